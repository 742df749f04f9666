"""The contract between the agent, the worker and Kibana: where documents live and what their keys
and categorical values look like. Each rule is written here once; everything that writes or reads
prediction logs, alerts or dead letters imports it (docs/architecture.md, "The contract").

- Data streams: ``logs-inferwatch.<dataset>-<namespace>``, the dataset part of a model name by
  ``model_dataset``; every model's streams match ``LOGS_PATTERN``.
- Document ids: ``document_id(key)``, base64url of a 16-byte blake2b of the key (22 characters);
  the same line always gets the same id, so a replay is answered 409 and stored once.
- Categorical values: ``category_str``, the one string rule for a JSON scalar; the worker calls it
  after turning numpy scalars into Python ones, so a baseline's categories match the documents.
- Text: ``inferwatch.core.tokenize.tokenize`` is the one tokenizer (agent and baseline).
"""

from __future__ import annotations

import math
import re
from binascii import b2a_base64

import orjson

# -- data streams and indices -------------------------------------------------------------------

DATASET_PREFIX = "inferwatch"
LOGS_PATTERN = "logs-inferwatch.*-*"  # every model's prediction log data streams
LOGS_TEMPLATE = "logs-inferwatch"  # the index template that covers LOGS_PATTERN
ALERTS_INDEX = "inferwatch-alerts"  # one document per alert, updated in place
INCIDENTS_INDEX = "inferwatch-incidents"  # one document per incident (alerts of one cause)
HISTORY_STREAM = "logs-inferwatch_alerts.history-default"  # every alert transition, append-only
HISTORY_PATTERN = "logs-inferwatch_alerts.history-*"
BASELINES_INDEX = "inferwatch-baselines"
DEAD_LETTER_INDEX = "inferwatch-dead-letter"  # agent.dead_letter_index's default

_DATASET_RE = re.compile(r"[^a-z0-9_.]")
DATASET_MAX = 100


def model_dataset(model: str) -> str:
    """The data stream dataset part of a model name: lowercased, every character outside
    ``[a-z0-9_.]`` replaced by ``_``, at most 100 characters (``churn-classifier`` ->
    ``churn_classifier``). The config validates model names by it; the agent applies it to the
    names it reads in log lines; the worker searches the streams it names."""
    return _DATASET_RE.sub("_", model.lower())[:DATASET_MAX]


def dataset(model: str) -> str:
    """``inferwatch.<model_dataset(model)>``: the ``data_stream.dataset`` of a model's logs."""
    return f"{DATASET_PREFIX}.{model_dataset(model)}"


def data_stream(model: str, namespace: str) -> str:
    """``logs-inferwatch.<dataset>-<namespace>``: where one model's logs of one namespace go."""
    return f"logs-{dataset(model)}-{namespace}"


def data_stream_of_dataset(dataset_name: str, namespace: str) -> str:
    """The stream of an already computed ``data_stream.dataset`` (the agent's hot path)."""
    return f"logs-{dataset_name}-{namespace}"


def model_pattern(model: str) -> str:
    """``logs-inferwatch.<dataset>-*``: one model's streams in every namespace."""
    return f"logs-{dataset(model)}-*"


# -- document ids -------------------------------------------------------------------------------

_URLSAFE = bytes.maketrans(b"+/", b"-_")
try:  # hashlib's blake2b is this one; importing hashlib also loads OpenSSL (3.6 MB per process)
    from _blake2 import blake2b
except ImportError:  # pragma: no cover - an interpreter without CPython's builtin module
    from hashlib import blake2b
_BLAKE2B_16 = blake2b(digest_size=16)


def document_id_bytes(key: bytes) -> bytes:
    """``document_id`` of a key already in bytes, as bytes (the agent's hot path)."""
    hasher = _BLAKE2B_16.copy()  # cheaper than passing digest_size on every call
    hasher.update(key)
    return b2a_base64(hasher.digest(), newline=False).translate(_URLSAFE, b"=")


def document_id(key: str) -> str:
    """base64url without padding of the 16-byte blake2b digest of ``key`` (22 characters)."""
    return document_id_bytes(key.encode()).decode()


# -- categorical values -------------------------------------------------------------------------


def category_str(value: bool | int | float | str) -> str:
    """A JSON scalar as the string of a categorical feature: bool -> ``"true"``/``"false"``, an
    integral number -> its integer digits (``4`` and ``4.0`` -> ``"4"``), other floats as orjson
    writes them (``2.5``, ``1e-7``, ``1e+20``), strings unchanged.

    The one rule: the agent writes categoricals by it, and the worker applies it to what baselines
    and count sources read back (``inferwatch.analytics.sources.tables.category_str`` only turns
    numpy scalars and nulls into Python values first). tests/unit/analytics/test_str_rule_agreement.py
    holds both sides to one table."""
    if value is True:
        return "true"
    if value is False:
        return "false"
    if type(value) is int:
        return str(value)
    if type(value) is float:
        if value.is_integer() and abs(value) < 2**53:
            return str(int(value))
        return orjson.dumps(value).decode() if math.isfinite(value) else str(value)
    return str(value)
