"""The dashboard the server serves at `/dashboard/`: pages whose scripts read the REST API."""
