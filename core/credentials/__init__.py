"""Secrets Baton holds for others: platform tokens (encrypted at rest) and its own API keys."""
