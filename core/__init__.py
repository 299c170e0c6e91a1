"""Baton core: the hybrid inference engine and its domain (no Flask, no platform SDKs)."""
