"""The agent's self-metrics: what it counts (``METRICS``), the one-line progress summary, and the
endpoint that serves them (``MetricsServer``: ``/metrics``, ``/livez`` or ``/health``, ``/readyz``).

The mechanism (a ``prometheus_client`` collector over a lock-guarded dict, label sets initialised,
``process_*``, ``python_info``, ``build_info``) is ``inferwatch.core.selfmetrics``, shared with the
worker; this module only declares the agent's metrics, each once with its type, help text and the
label values that exist from the start.
"""

from __future__ import annotations

from inferwatch.core import __version__
from inferwatch.core.metricsserver import HealthCheck, HealthStatus, MetricsServer, parse_listen
from inferwatch.core.selfmetrics import Labels, Spec, Store, labels

PREFIX = "inferwatch_agent_"

# Reasons a line or document goes to the dead letter that the agent itself decides (the reader,
# the normalizer, the ship loop): their series exist at 0 from the start. Reasons Elasticsearch
# gives per item (its error type, e.g. document_parsing_exception, or http_<status>) appear with
# their first document.
DEAD_LETTER_REASONS = (
    "bad_timestamp",
    "internal_error",
    "invalid_json",
    "invalid_utf8",
    "line_too_long",
    "missing_field",
    "not_an_object",
    "request_too_large",
    "undecodable_record",
)
DROP_REASONS = (
    "copytruncate_lost",
    "dead_letter_index",
    "dead_letter_write_failed",
    "spool_records_lost",
    "truncated_while_away",
)

# What the normalizer repairs instead of rejecting (``Normalizer.counts``), and the normalizers
# that take lines (``agent.fastpath``).
REPAIR_REASONS = ("invalid_value", "timestamp_missing")
NORMALIZERS = ("native", "python")

SECONDS_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
DOCUMENT_BUCKETS = (1.0, 10.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 2000.0, 5000.0, 10000.0)
BYTE_BUCKETS = tuple(float(1024 * 4**i) for i in range(8))  # 1 KiB .. 16 MiB

METRICS: dict[str, Spec] = {
    "lines_read_total": Spec(
        "counter", "Lines read from log files (complete lines, oversized ones included)."
    ),
    "documents_shipped_total": Spec("counter", "Documents the output created (201)."),
    "documents_duplicate_total": Spec(
        "counter", "Documents the output already held (409): a replay, not an error."
    ),
    "documents_retried_total": Spec(
        "counter", "Bulk items retried, by the status that made them retry.", ("status",)
    ),
    "dead_lettered_total": Spec(
        "counter",
        "Lines and documents written to the dead letter, by reason.",
        ("reason",),
        tuple((r,) for r in DEAD_LETTER_REASONS),
    ),
    "dropped_total": Spec(
        "counter",
        "Data lost or skipped, by reason (spool corruption, truncation...).",
        ("reason",),
        tuple((r,) for r in DROP_REASONS),
    ),
    "storage_repairs_total": Spec(
        "counter",
        "Damage found and repaired in the spool or registry at open, by store and reason.",
        ("store", "reason"),
    ),
    "bulk_requests_total": Spec(
        "counter",
        "Bulk requests sent, by result (ok, unavailable with its HTTP status, none or error).",
        ("result", "status"),
        (("ok", ""),),
    ),
    "spooled_records_total": Spec("counter", "Bulk bodies written to the spool."),
    "loop_errors_total": Spec(
        "counter",
        "Unexpected errors caught at the top of a loop (logged), by loop.",
        ("loop",),
        (("read",), ("ship",)),
    ),
    "loop_failing": Spec(
        "gauge",
        "1 while a loop's step keeps failing (logged once per episode), by loop.",
        ("loop",),
        (("read",), ("ship",), ("progress",)),
    ),
    "disk_full": Spec(
        "gauge",
        "1 while a loop cannot write for a full disk (ENOSPC, EDQUOT), by loop: its own files, "
        "or for ship also the local store.",
        ("loop",),
        (("read",), ("ship",), ("progress",)),
    ),
    "parse_workers": Spec(
        "gauge", "Parse worker processes ready to parse beside the read thread (agent.parse_workers)."
    ),
    "parse_worker_failures_total": Spec(
        "counter",
        "Parse workers that failed (their share was parsed in the read thread), by reason.",
        ("reason",),
        (("start",), ("exited",), ("timeout",), ("protocol",)),
    ),
    "lines_parsed_in_workers_total": Spec("counter", "Lines normalized by parse worker processes."),
    "lines_normalized_total": Spec(
        "counter",
        "Lines normalized (written or rejected), by the normalizer that took them: native (the fast "
        "path) or python (lines the native one declined; every line without it or with redaction).",
        ("by",),
        tuple((n,) for n in NORMALIZERS),
    ),
    "normalizer_repairs_total": Spec(
        "counter",
        "Repairs instead of rejects, by reason: timestamp_missing (a line given the ingest time), "
        "invalid_value (a value nulled or left out, named in ml.invalid).",
        ("reason",),
        tuple((r,) for r in REPAIR_REASONS),
    ),
    "bulk_in_flight": Spec("gauge", "Bulk requests sent and not yet answered."),
    "documents_awaiting_retry": Spec(
        "gauge", "Bulk items answered 429/5xx that wait to be sent again (new records keep flowing)."
    ),
    "spool_bytes": Spec("gauge", "Bytes the spool holds on disk."),
    "spool_pending_records": Spec("gauge", "Spool records not yet acknowledged."),
    "spool_full": Spec(
        "gauge",
        "1 from an append refused for room until the spool has drained to a quarter of max_bytes "
        "(reading pauses whenever it is full meanwhile).",
    ),
    "oldest_unshipped_age_seconds": Spec("gauge", "Age of the oldest spool record not yet acknowledged."),
    "file_lag_bytes": Spec(
        "gauge", "Per file: its size minus the offset committed to the registry.", ("path",)
    ),
    "files_open": Spec("gauge", "Log files being tailed."),
    "files_skipped_total": Spec(
        "counter",
        "Files the globs match that are not read, by reason (compressed: a gzip/zstd/bzip2/xz/lz4 file).",
        ("reason",),
        (("compressed",),),
    ),
    "output_up": Spec(
        "gauge",
        "1 when the last request reached the output, 0 when it failed (no sample before the first).",
        known_at_start=False,
    ),
    "bulk_request_duration_seconds": Spec(
        "histogram", "Time of one bulk request to the output, answered or failed.", buckets=SECONDS_BUCKETS
    ),
    "bulk_request_documents": Spec(
        "histogram", "Documents in one bulk request to the output.", buckets=DOCUMENT_BUCKETS
    ),
    "bulk_request_bytes": Spec(
        "histogram", "Compressed body size of one bulk request to the output.", buckets=BYTE_BUCKETS
    ),
}


class Metrics(Store):
    """The agent's metrics: ``inc``/``set``/``replace``/``observe`` from the loops, read by the
    progress line and the HTTP thread."""

    def __init__(self) -> None:
        super().__init__(PREFIX, METRICS, __version__)


def progress_line(m: Metrics) -> str:
    """The one-line summary logged every 30 s."""
    retried = int(m.total("documents_retried_total"))
    dead = int(m.total("dead_lettered_total"))
    age = m.value("oldest_unshipped_age_seconds")
    up = "up" if m.value("output_up") or not m.by_label("output_up") else "DOWN"
    return (
        f"read {int(m.total('lines_read_total'))} lines, "
        f"shipped {int(m.total('documents_shipped_total'))} "
        f"(+{int(m.total('documents_duplicate_total'))} duplicates), "
        f"retried {retried}, dead-lettered {dead}, "
        f"spool {int(m.value('spool_pending_records'))} records / {int(m.value('spool_bytes'))} B, "
        f"oldest unshipped {age:.1f}s, {int(m.value('files_open'))} files, output {up}"
    )


__all__ = [
    "METRICS",
    "PREFIX",
    "HealthCheck",
    "HealthStatus",
    "Labels",
    "Metrics",
    "MetricsServer",
    "labels",
    "parse_listen",
    "progress_line",
]
