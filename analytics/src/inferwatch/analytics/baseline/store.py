"""Where baselines live: JSON files ``<model>@<version>.json`` in a directory (written atomically),
and optionally the ``inferwatch-baselines`` index (id ``<model>:<version>``).

The index stores the baseline JSON under ``baseline`` in an object mapped ``enabled: false``:
it is kept in ``_source`` but never parsed into fields, so thousands of category values or
tokens cannot explode the mapping. ``model``, ``version``, ``created``, ``source`` and ``rows``
are indexed beside it for Kibana and people.
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Protocol

from elasticsearch import Elasticsearch

from inferwatch.analytics import es
from inferwatch.analytics.baseline.codec import (
    baseline_from_dict,
    baseline_from_json,
    baseline_to_dict,
    baseline_to_json,
)
from inferwatch.analytics.model import Baseline
from inferwatch.core.atomic import atomic_write_bytes, read_state_bytes
from inferwatch.core.contract import BASELINES_INDEX

log = logging.getLogger(__name__)

BASELINES_MAPPINGS: dict[str, Any] = {
    "dynamic": False,
    "properties": {
        "model": {"type": "keyword"},
        "version": {"type": "keyword"},
        "created": {"type": "date"},
        "source": {"type": "keyword"},
        "rows": {"type": "long"},
        "format": {"type": "integer"},
        "baseline": {"type": "object", "enabled": False},
    },
}

# One replica when there is a second node, none on a single node (else the index stays yellow),
# as the alert indices (analytics.alert_index).
BASELINES_SETTINGS: dict[str, Any] = {"index": {"auto_expand_replicas": "0-1"}}


class BaselineUnreadable(Exception):
    """A stored baseline that cannot be read (truncated, not JSON, another format): the model's
    evaluation cannot run. Names where it is and the fix; ``reason`` is its kind for the worker's
    error counts (``scheduler.error_reason``)."""

    reason = "baseline_unreadable"

    def __init__(self, model: str, version: str, where: str, problem: str) -> None:
        self.model, self.version, self.where, self.problem = model, version, where, problem
        super().__init__(f"baseline {model}@{version} is unreadable: {where}: {problem}")

    def fix(self, config: str = "CONFIG") -> str:
        return (
            f"rebuild it with `inferwatch baseline build -c {config} -m {self.model} -v {self.version} "
            f"--data TRAINING_DATA` (or --from-logs START END), or restore {self.where} from a backup"
        )

    def __str__(self) -> str:
        return f"{self.args[0]}; fix: {self.fix()}"


@contextmanager
def _decoding(model: str, version: str, where: str) -> Iterator[None]:
    """A baseline that does not decode becomes ``BaselineUnreadable`` naming ``where``."""
    try:
        yield
    except (ValueError, KeyError, TypeError, AttributeError) as exc:  # JSON and Unicode errors too
        raise BaselineUnreadable(model, version, where, f"{type(exc).__name__}: {exc}") from exc


class BaselineStore(Protocol):
    def load(self, model: str, version: str) -> Baseline | None: ...

    def save(self, baseline: Baseline) -> None: ...


def _safe(part: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", part)


class LocalBaselineStore:
    def __init__(self, directory: Path, fsync: bool = True) -> None:
        self.directory = directory
        self.fsync = fsync

    def _legacy_path(self, model: str, version: str) -> Path:
        return self.directory / f"{_safe(model)}@{_safe(version)}.json"

    def path(self, model: str, version: str) -> Path:
        """``<model>@<version>.json``; when a name had to be made safe, a hash of the exact
        names is appended, so ``churn/classifier`` and ``churn_classifier`` keep two files."""
        legacy = self._legacy_path(model, version)
        if legacy.name == f"{model}@{version}.json":
            return legacy
        digest = hashlib.blake2b(f"{model}\x1f{version}".encode(), digest_size=4).hexdigest()
        return legacy.with_name(f"{legacy.stem}-{digest}.json")

    def load(self, model: str, version: str) -> Baseline | None:
        for path in dict.fromkeys([self.path(model, version), self._legacy_path(model, version)]):
            data = read_state_bytes(path)
            if data is None:
                continue
            with _decoding(model, version, str(path)):
                baseline = baseline_from_json(data)
            if (baseline.model, baseline.version) == (model, version):  # else another name's file
                return baseline
        return None

    def save(self, baseline: Baseline) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(
            self.path(baseline.model, baseline.version), baseline_to_json(baseline), self.fsync
        )


class ElasticsearchBaselineStore:
    """Reads the index first and falls back to the local directory; writes both (the file first,
    so a baseline is never only in a place the worker may not reach)."""

    def __init__(self, client: Elasticsearch, directory: Path, fsync: bool = True) -> None:
        self.client = client
        self.local = LocalBaselineStore(directory, fsync)
        self._index_ready = False

    def load(self, model: str, version: str) -> Baseline | None:
        try:
            doc = es.get_document(self.client, BASELINES_INDEX, f"{model}:{version}")
        except es.ElasticsearchError as exc:
            log.warning(
                "baseline %s:%s from Elasticsearch failed, using the local copy: %s", model, version, exc
            )
            doc = None
        if doc is not None and isinstance(doc.get("baseline"), dict):
            where = f"the {BASELINES_INDEX} index, document {model}:{version}"
            with _decoding(model, version, where):
                baseline = baseline_from_dict(doc["baseline"])
            if (baseline.model, baseline.version) == (model, version):  # "a:b"+"1" is "a"+"b:1"
                return baseline
        return self.local.load(model, version)

    def save(self, baseline: Baseline) -> None:
        self.local.save(baseline)
        if not self._index_ready:
            es.ensure_index(self.client, BASELINES_INDEX, BASELINES_MAPPINGS, BASELINES_SETTINGS)
            self._index_ready = True
        document = {
            "model": baseline.model,
            "version": baseline.version,
            "created": baseline.created.isoformat(),
            "source": baseline.source,
            "rows": baseline.rows,
            "format": baseline_to_dict(baseline)["format"],
            "baseline": baseline_to_dict(baseline),
        }
        es.index_document(self.client, BASELINES_INDEX, baseline.doc_id, document)
