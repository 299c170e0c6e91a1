"""App manifests as data (HubSpot, Slack, Salesforce) arrive with their connectors."""
