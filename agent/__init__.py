"""inferwatch agent: tails prediction logs and ships them to Elasticsearch, losing and duplicating nothing."""

__version__ = "0.1.0"
