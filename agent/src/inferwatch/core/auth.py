"""The ``Authorization`` header value for Elasticsearch and Kibana alike, from the configured
credentials (one rule for the agent's bulk output, the worker's client and ``inferwatch setup``)."""

from __future__ import annotations

import base64

from inferwatch.core.configschema import Secret


def authorization_value(api_key: Secret | None, username: str | None, password: Secret | None) -> str | None:
    """``ApiKey`` or ``Basic`` credentials, or None when there are none.

    ``api_key`` is the encoded form Elasticsearch returns (``encoded``), or ``id:api_key``, which is
    base64-encoded here as the official clients do (base64 has no ``:``).
    """
    if api_key is not None:
        key = api_key.reveal()
        if ":" in key:
            key = base64.b64encode(key.encode()).decode()
        return f"ApiKey {key}"
    if username is not None:
        pair = f"{username}:{password.reveal() if password else ''}"
        return "Basic " + base64.b64encode(pair.encode()).decode()
    return None
