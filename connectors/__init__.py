"""Platform connectors (HubSpot, Salesforce, Slack) arrive in steps 3-5."""
