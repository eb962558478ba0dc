"""Adapters that make an existing agent framework's runs durable on kitaru.

Each adapter is a module of its own, imported only when used:
`kitaru.adapters.pydantic_ai` (Pydantic AI).
"""
