"""Where count tables come from: Elasticsearch aggregations or the local store (the same tables
with the same semantics; ``tests/contract/test_sources_contract.py`` holds them equal)."""

from inferwatch.analytics.sources.base import BaselineCountSource, CountSource

__all__ = ["BaselineCountSource", "CountSource"]
