"""A small order-processing package whose flow is run as `python -m shop.orders WORKDIR`."""
