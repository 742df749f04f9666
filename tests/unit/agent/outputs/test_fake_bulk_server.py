"""The fake bulk endpoint as other tests use it: as a subprocess driven over its control port, and
its compact fast path (what benchmarks run) against its per-item path."""

from __future__ import annotations

import gzip
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import orjson
import pytest
import urllib3

from tests.fakes.bulk_server import BulkServer

ROOT = Path(__file__).resolve().parents[4]
http = urllib3.PoolManager(retries=False, timeout=5.0)


def start(tmp_path: Path, *extra: str) -> tuple[subprocess.Popen[bytes], dict[str, Any]]:
    ready = tmp_path / "ready.json"
    ready.unlink(missing_ok=True)
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.fakes.bulk_server", "--port", "0", "--ready-file", str(ready), *extra],
        cwd=ROOT,
        stdout=subprocess.PIPE,
    )
    deadline = time.monotonic() + 30
    while not ready.exists():
        assert proc.poll() is None, "the fake exited"
        assert time.monotonic() < deadline, "the fake did not start"
        time.sleep(0.02)
    info = orjson.loads(ready.read_bytes())
    assert proc.stdout is not None
    assert orjson.loads(proc.stdout.readline()) == info
    return proc, info


def bulk(url: str, *ids: str, query: str = "") -> urllib3.BaseHTTPResponse:
    lines = b"".join(
        orjson.dumps({"create": {"_index": "logs-x-default", "_id": i}}) + b"\n" + b'{"n":1}\n' for i in ids
    )
    return http.request(
        "POST",
        url + "/_bulk" + query,
        body=gzip.compress(lines),
        headers={"Content-Type": "application/x-ndjson", "Content-Encoding": "gzip"},
    )


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 0


def test_subprocess_faults_ids_and_state_file(tmp_path: Path) -> None:
    state = tmp_path / "state.ndjson"
    proc, info = start(tmp_path, "--state-file", str(state))
    try:
        root = http.request("GET", info["url"] + "/")
        assert root.status == 200
        assert root.headers["X-Elastic-Product"] == "Elasticsearch"
        assert orjson.loads(root.data)["version"]["number"] == "8.15.0"

        answer = orjson.loads(bulk(info["url"], "a", "b", "a").data)
        assert [next(iter(i.values()))["status"] for i in answer["items"]] == [201, 201, 409]

        changed = http.request("POST", info["control_url"] + "/_fault", body=b'{"mode": "refuse"}')
        assert orjson.loads(changed.data)["mode"] == "refuse"
        with pytest.raises(urllib3.exceptions.HTTPError):
            http.request("GET", info["url"] + "/", headers={"Connection": "close"})
        http.request("POST", info["control_url"] + "/_fault", body=b'{"mode": "503", "retry_after": "3"}')
        unavailable = bulk(info["url"], "c")
        assert (unavailable.status, unavailable.headers["Retry-After"]) == (503, "3")
        http.request("POST", info["control_url"] + "/_fault", body=b'{"mode": "ok"}')
        assert bulk(info["url"], "c").status == 200

        bad = http.request("POST", info["control_url"] + "/_fault", body=b'{"nonsense": 1}')
        assert bad.status == 400

        ids = orjson.loads(http.request("GET", info["control_url"] + "/_inferwatch/ids").data)
        assert ids["ids"] == {"a": 1, "b": 1, "c": 1}
        assert ids["stats"]["conflicts"] == 1
        assert ids["stats"]["whole_request_errors"] == 1
    finally:
        stop(proc)

    assert len(state.read_bytes().splitlines()) == 3
    proc, info = start(tmp_path, "--state-file", str(state))
    try:
        answer = orjson.loads(bulk(info["url"], "a", "d").data)
        assert [next(iter(i.values()))["status"] for i in answer["items"]] == [409, 201]
        docs = http.request("GET", info["control_url"] + "/_inferwatch/docs").data.splitlines()
        assert sorted(orjson.loads(d)["_id"] for d in docs) == ["a", "b", "c", "d"]
        assert orjson.loads(docs[0])["_source"] == {"n": 1}
    finally:
        stop(proc)


COMPACT = "?filter_path=errors,items.*.status,items.*.error"


def _statuses(answer: urllib3.BaseHTTPResponse) -> list[int]:
    return [item["create"]["status"] for item in orjson.loads(answer.data)["items"]]


def _answers(srv: BulkServer, requests: list[tuple[str, ...]], query: str) -> list[Any]:
    return [orjson.loads(bulk(srv.url, *ids, query=query).data) for ids in requests]


@pytest.mark.parametrize("query", [COMPACT, ""], ids=["compact", "full"])
@pytest.mark.parametrize("item_429_rate", [0.0, 0.2])
def test_one_pass_answers_equal_the_per_item_path(query: str, item_429_rate: float) -> None:
    """The fake answers requests of fresh creates in one pass, in the compact answer the agent
    asks for and in the full one rsyslog and the Python client get: every answer, stored id,
    _seq_no and counter is what the per-item path says for the same requests, with refusals,
    their next draws and conflicts."""
    requests = [tuple(f"id-{i}" for i in range(r * 50, r * 50 + 50)) for r in range(4)]
    requests += [requests[0], ("x", "x", "y"), ("y", "z")]  # again; a duplicate in one; a conflict
    seen = []
    for one_pass in (True, False):
        with BulkServer(keep_documents=False, one_pass=one_pass) as srv:
            srv.set_faults(item_429_rate=item_429_rate, seed=3)
            seen.append((_answers(srv, requests, query), srv.stats(), srv.ids()))
    assert seen[0] == seen[1]
    answers, stats, _ = seen[0]
    assert stats["conflicts"] > 0 and (stats["rejected_429"] > 0) is (item_429_rate > 0)
    if not query:  # the full answer names every item and numbers the created ones
        first = answers[0]["items"][0]["create"]
        assert first["_index"] == "logs-x-default" and first["_id"] == "id-0"


@pytest.mark.parametrize("keep_documents", [True, False])
def test_compact_answers_equal_the_full_ones(keep_documents: bool) -> None:
    """Whatever the compact answer says is what the full one says for the same requests."""
    requests = [("a", "b", "c"), ("d", "d", "e"), ("a", "f"), ("g",)]
    seen: dict[str, list[list[int]]] = {}
    stats: dict[str, dict[str, int]] = {}
    for name, suffix in (("compact", COMPACT), ("full", "")):
        with BulkServer(keep_documents=keep_documents) as srv:
            seen[name] = [_statuses(bulk(srv.url, *ids, query=suffix)) for ids in requests]
            stats[name] = srv.stats()
            docs = srv.documents()
        assert sorted(k[1] for k in docs) == ["a", "b", "c", "d", "e", "f", "g"]
        assert all(v == ({"n": 1} if keep_documents else {}) for v in docs.values())
    assert seen["compact"] == seen["full"] == [[201, 201, 201], [201, 409, 201], [409, 201], [201]]
    assert stats["compact"] == stats["full"]


def test_compact_fresh_creates_still_drop_the_next_answer() -> None:
    with BulkServer() as srv:
        srv.set_faults(drop_next=1)
        with pytest.raises(urllib3.exceptions.HTTPError):
            bulk(srv.url, "a", "b", query=COMPACT)
        assert srv.stats()["dropped_responses"] == 1
        assert _statuses(bulk(srv.url, "a", "b", "c", query=COMPACT)) == [409, 409, 201]


def test_refusals_draw_what_draw_draws_for_every_attempt() -> None:
    """The one-pass draw (crc32 in pieces) decides each item as ``_draw`` does, past the attempts
    it keeps ready too."""
    from collections import Counter

    from tests.fakes.bulk_server import _draw, _refusals

    ids = [f"id-{n}" for n in range(3000)]
    attempts = Counter({ids[n]: n % 100 for n in range(0, 3000, 7)})
    expected = [_draw(5, i, attempts[i] + 1) < 0.3 for i in ids]
    assert _refusals(5, 0.3, attempts, ids) == expected
    assert 0 < sum(expected) < len(ids)
