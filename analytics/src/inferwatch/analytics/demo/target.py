"""Where the demo ships to: the local store (default), or the Elasticsearch named by
``INFERWATCH_ES_URL`` (with Kibana at ``INFERWATCH_KIBANA_URL``).

Credentials are never written into the demo's config: it refers to the environment variables
(``${INFERWATCH_ES_API_KEY}``, ``${INFERWATCH_ES_PASSWORD}``), which the agent and the worker
expand when they load it."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

log = logging.getLogger(__name__)

ES_URL = "INFERWATCH_ES_URL"
ES_API_KEY = "INFERWATCH_ES_API_KEY"
ES_USERNAME = "INFERWATCH_ES_USERNAME"
ES_PASSWORD = "INFERWATCH_ES_PASSWORD"
ES_CA_CERTS = "INFERWATCH_ES_CA_CERTS"
KIBANA_URL = "INFERWATCH_KIBANA_URL"


@dataclass(frozen=True)
class EsTarget:
    url: str
    kibana_url: str | None
    auth: str  # "api_key", "password" or "none"
    ca_certs: str | None

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> EsTarget | None:
        url = env.get(ES_URL, "").strip()
        if not url:
            return None
        auth = "api_key" if env.get(ES_API_KEY) else "password" if env.get(ES_PASSWORD) else "none"
        return cls(url, env.get(KIBANA_URL) or None, auth, env.get(ES_CA_CERTS) or None)

    def config_sections(self) -> dict[str, Any]:
        """The ``elasticsearch`` (and ``kibana``) sections of the demo's config."""
        es: dict[str, Any] = {"hosts": [f"${{{ES_URL}}}"]}
        if self.auth == "api_key":
            es["api_key"] = f"${{{ES_API_KEY}}}"
        elif self.auth == "password":
            es["username"] = f"${{{ES_USERNAME}:-elastic}}"
            es["password"] = f"${{{ES_PASSWORD}}}"
        if self.ca_certs:
            es["ca_certs"] = f"${{{ES_CA_CERTS}}}"
        out: dict[str, Any] = {"elasticsearch": es}
        if self.kibana_url:
            kibana: dict[str, Any] = {"url": f"${{{KIBANA_URL}}}"}
            if self.auth == "api_key":
                kibana["api_key"] = f"${{{ES_API_KEY}}}"
            elif self.auth == "password":
                kibana["username"] = f"${{{ES_USERNAME}:-elastic}}"
                kibana["password"] = f"${{{ES_PASSWORD}}}"
            out["kibana"] = kibana
        return out

    def links(self) -> list[str]:
        if not self.kibana_url:
            return []
        base = self.kibana_url.rstrip("/")
        return [f"{base}/app/dashboards", f"{base}/app/discover"]


class EsCounter:
    """Documents of the demo model's data streams in Elasticsearch (refreshed before counting,
    since the agent's bulk requests do not wait for a refresh)."""

    def __init__(self, client: Any, index: str) -> None:
        self.client = client
        self.index = index
        self.last = 0

    def count(self) -> int:
        try:
            self.client.indices.refresh(index=self.index, ignore_unavailable=True, allow_no_indices=True)
            self.last = int(self.client.count(index=self.index, allow_no_indices=True)["count"])
        except Exception as exc:  # a count that fails must not stop the demo: report the last one
            log.warning("counting %s failed: %s", self.index, exc)
        return self.last
