"""kitaru's Azure flavors: the `azure` artifact store. Importing this package imports no Azure SDK."""
