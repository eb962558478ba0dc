"""One conformance suite per component interface."""
