"""inferwatch Kibana assets (saved-object NDJSON, rules, connectors) and the setup client."""
