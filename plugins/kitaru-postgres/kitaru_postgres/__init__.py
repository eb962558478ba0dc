"""kitaru's PostgreSQL registry flavor."""
