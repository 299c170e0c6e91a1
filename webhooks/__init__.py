"""Flask app and platform webhooks arrive in step 2."""
