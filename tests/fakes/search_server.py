"""A loopback Elasticsearch ``_search`` endpoint that answers as Elasticsearch 8 does where the
analytics worker looks: index expressions (comma-separated names and ``*`` patterns over data
streams, ``ignore_unavailable``, ``allow_no_indices``), the ``_shards`` section with its
``failures``, ``timed_out``, ``allow_partial_search_results`` and the
``search_phase_execution_exception`` a refused partial search gets.

Each data stream has one backing index per generation (``.ds-<stream>-2026.11.22-00000N``), each
with one shard. It counts, over the documents that match the query's ``term`` and ``range`` filters (dates
when the bounds are strings): ``hits.total`` and the first ``size`` hits' ``_source``, ``terms`` (keywords by count; numbers by key when ordered ``_key: asc``, documents
per distinct value), ``date_histogram`` (hourly, with ``extended_bounds``), ``stats``, ``range``
(``from`` inclusive, ``to`` exclusive, a document once per bucket) and ``filter`` with
sub-aggregations. Others are answered empty: the contract suite tests the detectors' counting.

    with SearchServer() as srv:
        srv.add("logs-inferwatch.m-prod", [doc, ...])              # generation 1
        srv.add("logs-inferwatch.m-prod", [...], generation=2,      # a shard that fails
                failure=("illegal_argument_exception", "Field [ml.inputs.x] of type [keyword] ..."))
        srv.timed_out = True                                        # answer timed_out: true
        srv.requests                                                # [(target, params), ...]
"""

from __future__ import annotations

import bisect
import fnmatch
import json
import math
import threading
from collections import Counter
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

PRODUCT = ("X-Elastic-Product", "Elasticsearch")


def _backing(stream: str, generation: int) -> str:
    return f".ds-{stream}-2026.11.22-{generation:06d}"


def _get(doc: dict[str, Any], path: str) -> Any:
    cur: Any = doc
    for part in path.split("."):
        if not isinstance(cur, dict):
            return None
        cur = cur.get(part)
    return cur


def _ms(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC).timestamp() * 1000


def _numbers(doc: dict[str, Any], field: str) -> list[float]:
    value = _get(doc, field)
    values = value if isinstance(value, list) else [value]
    return [float(v) for v in values if isinstance(v, int | float) and not isinstance(v, bool)]


def _in_range(doc: dict[str, Any], field: str, bounds: dict[str, Any]) -> bool:
    if field == "@timestamp" or any(isinstance(b, str) for b in bounds.values()):  # dates
        value = _get(doc, field)
        if not isinstance(value, str):
            return False
        ts = _ms(value)
        return not ("gte" in bounds and ts < _ms(bounds["gte"])) and not (
            "lt" in bounds and ts >= _ms(bounds["lt"])
        )
    return any(
        not ("gte" in bounds and v < bounds["gte"]) and not ("lt" in bounds and v >= bounds["lt"])
        for v in _numbers(doc, field)
    )


def _matches(doc: dict[str, Any], query: dict[str, Any]) -> bool:
    clauses = (query.get("bool") or {}).get("filter", []) if "bool" in query else [query]
    for clause in clauses:
        if "term" in clause:
            ((field, value),) = clause["term"].items()
            if str(_get(doc, field)) != str(value):
                return False
        elif "range" in clause:
            ((field, bounds),) = clause["range"].items()
            if not _in_range(doc, field, bounds):
                return False
    return True


class SearchServer:
    def __init__(self) -> None:
        self.streams: dict[str, dict[int, list[dict[str, Any]]]] = {}
        self.failing: dict[str, tuple[str, str]] = {}  # backing index -> (type, reason)
        self.timed_out = False
        self.requests: list[tuple[str, dict[str, str]]] = []
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self._server.daemon_threads = True
        self._server.owner = self  # type: ignore[attr-defined]
        self._thread = threading.Thread(target=self._server.serve_forever, name="search-fake", daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def add(
        self,
        stream: str,
        docs: list[dict[str, Any]],
        generation: int = 1,
        failure: tuple[str, str] | None = None,
    ) -> None:
        with self._lock:
            self.streams.setdefault(stream, {}).setdefault(generation, []).extend(docs)
            if failure is not None:
                self.failing[_backing(stream, generation)] = failure

    def __enter__(self) -> SearchServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()

    # --- answers ---------------------------------------------------------------------------------

    def _resolve(self, target: str, params: dict[str, str]) -> tuple[list[tuple[str, str]], str | None]:
        """-> ([(stream, backing index)], the name of a missing concrete index when that is an error)."""
        out: list[tuple[str, str]] = []
        for expr in target.split(","):
            names = [s for s in self.streams if fnmatch.fnmatchcase(s, expr)]
            if not names and "*" not in expr and params.get("ignore_unavailable") != "true":
                return [], expr
            for stream in sorted(names):
                out += [(stream, _backing(stream, g)) for g in sorted(self.streams[stream])]
        return out, None

    def answer(self, target: str, params: dict[str, str], body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        with self._lock:
            self.requests.append((target, params))
            shards, missing = self._resolve(target, params)
            if missing is not None:
                reason = f"no such index [{missing}]"
                err = {"type": "index_not_found_exception", "reason": reason, "index": missing}
                return 404, {"error": {"root_cause": [err], **err}, "status": 404}
            failures: list[dict[str, Any]] = [
                {
                    "shard": 0,
                    "index": index,
                    "node": "fake-node-1",
                    "reason": {"type": self.failing[index][0], "reason": self.failing[index][1]},
                }
                for _, index in shards
                if index in self.failing
            ]
            if failures and params.get("allow_partial_search_results") == "false":
                root = [{**f["reason"], "index": f["index"]} for f in failures]
                all_failed = len(failures) == len(shards)
                error = {
                    "root_cause": root,
                    "type": "search_phase_execution_exception",
                    "reason": "all shards failed" if all_failed else "Partial shards failure",
                    "phase": "query",
                    "grouped": True,
                    "failed_shards": failures,
                    "caused_by": failures[0]["reason"],
                }
                return 400, {"error": error, "status": 400}
            docs = [
                d
                for stream, index in shards
                if index not in self.failing
                for g, gen_docs in self.streams[stream].items()
                if _backing(stream, g) == index
                for d in gen_docs
                if _matches(d, body.get("query") or {})
            ]
            shard_info: dict[str, Any] = {
                "total": len(shards),
                "successful": len(shards) - len(failures),
                "skipped": 0,
                "failed": len(failures),
            }
            if failures:
                shard_info["failures"] = failures
            response: dict[str, Any] = {
                "took": 3,
                "timed_out": self.timed_out,
                "_shards": shard_info,
                "hits": {
                    "total": {"value": len(docs), "relation": "eq"},
                    "max_score": None,
                    "hits": [{"_index": target, "_source": d} for d in docs[: int(body.get("size", 10))]],
                },
            }
            aggs = self._aggregations(body.get("aggs") or {}, docs)
            if aggs and shards:
                response["aggregations"] = aggs
            return 200, response

    def _aggregations(self, aggs: dict[str, Any], docs: list[dict[str, Any]]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name, agg in aggs.items():
            if "terms" in agg and agg["terms"].get("order") == {"_key": "asc"}:  # numeric values
                field, size = agg["terms"]["field"], agg["terms"].get("size", 10)
                per_value = Counter(v for d in docs for v in set(_numbers(d, field)))
                keys = sorted(per_value)
                out[name] = {
                    "doc_count_error_upper_bound": 0,
                    "sum_other_doc_count": sum(per_value[k] for k in keys[size:]),
                    "buckets": [{"key": k, "doc_count": per_value[k]} for k in keys[:size]],
                }
            elif "terms" in agg:
                counts = Counter(str(_get(d, agg["terms"]["field"])) for d in docs)
                counts.pop("None", None)
                buckets = [{"key": k, "doc_count": n} for k, n in counts.most_common()]
                out[name] = {"doc_count_error_upper_bound": 0, "sum_other_doc_count": 0, "buckets": buckets}
            elif "stats" in agg:
                values = [v for d in docs for v in _numbers(d, agg["stats"]["field"])]
                out[name] = {
                    "count": len(values),
                    "min": min(values) if values else None,
                    "max": max(values) if values else None,
                    "avg": sum(values) / len(values) if values else None,
                    "sum": sum(values),
                }
            elif "range" in agg:
                field = agg["range"]["field"]
                per_doc = [sorted(set(_numbers(d, field))) for d in docs]
                single = sorted(v[0] for v in per_doc if len(v) == 1)
                multi = [v for v in per_doc if len(v) > 1]
                buckets = []
                for r in agg["range"]["ranges"]:
                    lo, hi = r.get("from", -math.inf), r.get("to", math.inf)
                    n = bisect.bisect_left(single, hi) - bisect.bisect_left(single, lo)
                    n += sum(any(lo <= x < hi for x in v) for v in multi)
                    bucket: dict[str, Any] = {**r, "doc_count": n}
                    if "s" in (agg.get("aggs") or {}):  # stats of the values in the bucket
                        i, j = bisect.bisect_left(single, lo), bisect.bisect_left(single, hi)
                        held = single[i:j] + [x for v in multi for x in v if lo <= x < hi]
                        bucket["s"] = {
                            "count": len(held),
                            "min": min(held) if held else None,
                            "max": max(held) if held else None,
                        }
                    buckets.append(bucket)
                out[name] = {"buckets": buckets}
            elif "filter" in agg:
                matched = [d for d in docs if _matches(d, agg["filter"])]
                out[name] = {"doc_count": len(matched), **self._aggregations(agg.get("aggs") or {}, matched)}
            elif "date_histogram" in agg:
                hist = agg["date_histogram"]
                hours = Counter(int(_ms(str(_get(d, hist["field"]))) // 3_600_000) * 3_600_000 for d in docs)
                lo, hi = (
                    hist["extended_bounds"]["min"] // 3_600_000,
                    hist["extended_bounds"]["max"] // 3_600_000,
                )
                out[name] = {
                    "buckets": [
                        {"key": h * 3_600_000, "doc_count": hours.get(h * 3_600_000, 0)}
                        for h in range(lo, hi + 1)
                    ]
                }
        return out


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    def _send(self, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header(*PRODUCT)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        self._handle()

    def do_POST(self) -> None:
        self._handle()

    def _handle(self) -> None:
        owner: SearchServer = self.server.owner  # type: ignore[attr-defined]
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        if self.headers.get("Content-Encoding") == "gzip":
            import gzip

            raw = gzip.decompress(raw)
        parts = urlsplit(self.path)
        params = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        path = parts.path.strip("/")
        if path == "":
            self._send(
                200, {"name": "fake", "version": {"number": "8.14.1"}, "tagline": "You Know, for Search"}
            )
            return
        if path.endswith("/_search"):
            target = unquote(path[: -len("/_search")])
            status, body = owner.answer(target, params, json.loads(raw or b"{}"))
            self._send(status, body)
            return
        self._send(404, {"error": {"type": "fake_not_implemented", "reason": self.path}, "status": 404})
