"""The HubSpot connector: workflow actions, webhooks, context fetch, write-back, OAuth."""
