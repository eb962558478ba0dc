"""kitaru's Google Cloud flavors: the `gcs` artifact store and the `vertex` and `cloud-run`
execution targets. Importing this package imports no SDK."""
