"""Where bulk bodies go: Elasticsearch (``elasticsearch``) or the local store (``local``).

``base`` names the contract, ``classify`` turns bulk answers into per-item outcomes (pure),
``backoff`` computes the waits between attempts (pure given its random source).
"""

from inferwatch.agent.outputs.base import Output, OutputRefused, OutputUnavailable, RequestTooLarge

__all__ = ["Output", "OutputRefused", "OutputUnavailable", "RequestTooLarge"]
