"""Platform connectors: one module per network, a Source and, where it can post, a Publisher."""
