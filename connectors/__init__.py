"""Platform connectors: inbound parsing, context fetch and write-back, one folder per platform."""
