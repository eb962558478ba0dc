"""kitaru's AWS flavors: the `s3` artifact store. Importing this package imports no AWS SDK."""
