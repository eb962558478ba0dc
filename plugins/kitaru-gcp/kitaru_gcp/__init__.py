"""kitaru's Google Cloud flavors: the `gcs` artifact store. Importing this package imports no SDK."""
