"""Baton composition root: the CLI and the wiring of settings, engine and connectors."""
