"""The `server` registry flavor: runners, workers and clients use a kitaru server over HTTP
as their registry. Loaded by runners like any flavor plugin: modules here import only
kitaru_core's contract (and httpx), never `kitaru` or the server application."""
