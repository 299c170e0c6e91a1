"""Platform connectors: one folder per platform, each on the contract of :mod:`connectors.base`."""
