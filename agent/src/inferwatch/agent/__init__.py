"""inferwatch agent: tails prediction logs and ships them to Elasticsearch, losing and duplicating nothing."""
