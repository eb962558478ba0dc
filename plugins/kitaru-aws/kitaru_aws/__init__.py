"""kitaru's AWS flavors: the `s3` artifact store and the `sagemaker` execution target.
Importing this package imports no AWS SDK."""
