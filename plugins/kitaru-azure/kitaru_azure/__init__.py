"""kitaru's Azure flavors: the `azure` artifact store and the `azureml` execution target.

Importing this package imports no Azure SDK."""
