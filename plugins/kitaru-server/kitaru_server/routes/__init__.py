"""The server's routes, one module per area. Every route but `/health` and `/ready` declares
the scope it needs with `dependencies=[require(...)]` (tests/test_server_auth.py checks all)."""
