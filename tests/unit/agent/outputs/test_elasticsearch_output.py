"""ElasticsearchOutput against the fake bulk endpoint over real loopback HTTP."""

from __future__ import annotations

import base64
import gzip
import hashlib
import shutil
import socket
import ssl
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from inferwatch.agent.model import Outcome
from inferwatch.agent.outputs.backoff import Backoff
from inferwatch.agent.outputs.base import OutputRefused, OutputUnavailable
from inferwatch.agent.outputs.elasticsearch import ElasticsearchOutput, authorization_header
from inferwatch.core.config import ElasticsearchConfig, Secret
from inferwatch.core.configschema import Duration
from tests.fakes.bulk_server import BulkServer

INDEX = "logs-inferwatch.churn-default"


def body(*docs: tuple[str, dict[str, object]], index: str = INDEX) -> bytes:
    lines = b""
    for doc_id, doc in docs:
        lines += (
            orjson.dumps({"create": {"_index": index, "_id": doc_id}}) + b"\n" + orjson.dumps(doc) + b"\n"
        )
    return gzip.compress(lines, 1)


def doc(age: object = 41) -> dict[str, object]:
    return {"@timestamp": "2026-11-22T10:48:12.486Z", "ml": {"inputs": {"age": age}}}


@pytest.fixture
def srv() -> Iterator[BulkServer]:
    with BulkServer() as server:
        yield server


@pytest.fixture
def out(srv: BulkServer) -> Iterator[ElasticsearchOutput]:
    output = ElasticsearchOutput(ElasticsearchConfig(hosts=(srv.url,), request_timeout=Duration(5.0)))
    yield output
    output.close()


def test_created_then_duplicate_on_replay(srv: BulkServer, out: ElasticsearchOutput) -> None:
    payload = body(("a", doc()), ("b", doc(7)))

    first = out.send(payload, 2)
    second = out.send(payload, 2)

    assert [r.outcome for r in first] == [Outcome.CREATED, Outcome.CREATED]
    assert [(r.outcome, r.status, r.error_type) for r in second] == [
        (Outcome.DUPLICATE, 409, "version_conflict_engine_exception"),
    ] * 2
    assert srv.documents() == {(INDEX, "a"): doc(), (INDEX, "b"): doc(7)}
    assert srv.stats()["conflicts"] == 2


def test_poison_document_rejected_with_reason_others_created(
    srv: BulkServer, out: ElasticsearchOutput
) -> None:
    srv.set_faults(reject_field="ml.inputs.age", reject_value="poison")

    results = out.send(body(("a", doc()), ("p", doc("poison")), ("c", doc(3))), 3)

    assert [r.outcome for r in results] == [Outcome.CREATED, Outcome.REJECTED, Outcome.CREATED]
    assert results[1].status == 400
    assert results[1].error_type == "mapper_parsing_exception"
    assert "ml.inputs.age" in results[1].error_reason
    assert "caused by illegal_argument_exception" in results[1].error_reason
    assert set(srv.ids()) == {"a", "c"}


def test_item_429_is_retry_and_a_resend_completes(srv: BulkServer, out: ElasticsearchOutput) -> None:
    srv.set_faults(item_429_rate=0.5, seed=3)
    docs = [(f"id{i}", doc(i)) for i in range(40)]

    results = out.send(body(*docs), 40)
    retry = [i for i, r in enumerate(results) if r.outcome is Outcome.RETRY]
    assert retry and len(retry) < 40  # the seed gives a mix
    assert all(results[i].status == 429 for i in retry)
    assert {r.outcome for r in results} == {Outcome.CREATED, Outcome.RETRY}

    srv.set_faults(item_429_rate=0.0)
    again = out.send(body(*(docs[i] for i in retry)), len(retry))
    assert [r.outcome for r in again] == [Outcome.CREATED] * len(retry)
    assert set(srv.ids()) == {d for d, _ in docs}


def test_503_raises_unavailable_with_retry_after(srv: BulkServer, out: ElasticsearchOutput) -> None:
    srv.set_faults(mode="503", retry_after="7")

    with pytest.raises(OutputUnavailable) as info:
        out.send(body(("a", doc())), 1)

    assert info.value.status == 503
    assert info.value.retry_after == 7.0
    assert not isinstance(info.value, OutputRefused)
    assert srv.ids() == {}


def test_connection_refused_raises_unavailable_then_recovers(
    srv: BulkServer, out: ElasticsearchOutput
) -> None:
    assert out.send(body(("a", doc())), 1)[0].outcome is Outcome.CREATED  # a pooled keep-alive connection
    srv.set_faults(mode="refuse")

    with pytest.raises(OutputUnavailable) as info:
        out.send(body(("b", doc())), 1)
    assert info.value.status is None
    with pytest.raises(OutputUnavailable):
        out.send(body(("b", doc())), 1)  # a fresh connection: refused by the closed socket
    with socket.socket() as s:
        assert s.connect_ex(("127.0.0.1", srv.port)) != 0

    srv.set_faults(mode="ok")
    assert out.send(body(("b", doc())), 1)[0].outcome is Outcome.CREATED
    assert set(srv.ids()) == {"a", "b"}


def test_lost_answer_then_resend_gives_duplicates(srv: BulkServer, out: ElasticsearchOutput) -> None:
    srv.set_faults(drop_response=True)
    with pytest.raises(OutputUnavailable):
        out.send(body(("a", doc())), 1)
    srv.set_faults(drop_response=False)

    assert out.send(body(("a", doc())), 1)[0].outcome is Outcome.DUPLICATE
    assert srv.ids() == {"a": 1}


def test_401_is_refused_and_names_the_fix(srv: BulkServer, out: ElasticsearchOutput) -> None:
    srv.set_faults(status=401)

    with pytest.raises(OutputRefused) as info:
        out.send(body(("a", doc())), 1)

    assert info.value.status == 401
    assert "api_key" in str(info.value)
    assert isinstance(info.value, OutputUnavailable)  # a ship loop that only knows the base retries


def test_403_names_the_privileges(srv: BulkServer, out: ElasticsearchOutput) -> None:
    srv.set_faults(status=403)
    with pytest.raises(OutputRefused, match="create_doc"):
        out.send(body(("a", doc())), 1)


def test_answer_without_product_header_is_refused(srv: BulkServer, out: ElasticsearchOutput) -> None:
    srv.set_faults(product_header=False)

    with pytest.raises(OutputRefused, match="X-Elastic-Product"):
        out.send(body(("a", doc())), 1)
    with pytest.raises(OutputRefused, match="X-Elastic-Product"):
        out.check()


def test_413_splits_the_body_and_keeps_item_order(srv: BulkServer, out: ElasticsearchOutput) -> None:
    # Incompressible texts, so that the gzip body grows with the number of documents.
    docs: list[tuple[str, dict[str, object]]] = [
        (f"id{i}", {"text": hashlib.sha512(str(i).encode()).hexdigest() * 4}) for i in range(8)
    ]
    one = len(body(docs[0]))
    srv.set_faults(max_body_bytes=one * 3)  # fits about two documents per request

    results = out.send(body(*docs), 8)

    assert [r.outcome for r in results] == [Outcome.CREATED] * 8
    assert set(srv.ids()) == {d for d, _ in docs}
    assert srv.stats()["whole_request_errors"] >= 1


def test_413_for_a_single_document_rejects_it(srv: BulkServer, out: ElasticsearchOutput) -> None:
    srv.set_faults(max_body_bytes=10)

    results = out.send(body(("a", doc()), ("b", doc())), 2)

    assert [(r.outcome, r.status) for r in results] == [(Outcome.REJECTED, 413)] * 2
    assert srv.ids() == {}


def test_api_key_is_sent(srv: BulkServer) -> None:
    srv.set_faults(require_auth="ApiKey c2VjcmV0")
    good = ElasticsearchOutput(ElasticsearchConfig(hosts=(srv.url,), api_key=Secret("c2VjcmV0")))
    bad = ElasticsearchOutput(ElasticsearchConfig(hosts=(srv.url,), api_key=Secret("d3Jvbmc=")))

    assert good.send(body(("a", doc())), 1)[0].outcome is Outcome.CREATED
    with pytest.raises(OutputRefused):
        bad.send(body(("b", doc())), 1)
    assert "c2VjcmV0" not in repr(good)


def test_authorization_header_forms(tmp_path: Path) -> None:
    encoded = base64.b64encode(b"id1:s3cret").decode()
    assert authorization_header(ElasticsearchConfig(hosts=("http://x",), api_key=Secret("id1:s3cret"))) == (
        f"ApiKey {encoded}"
    )
    key_file = tmp_path / "key"
    key_file.write_text("abc=\n")
    assert (
        authorization_header(ElasticsearchConfig(hosts=("http://x",), api_key_file=key_file)) == "ApiKey abc="
    )
    basic = authorization_header(
        ElasticsearchConfig(hosts=("http://x",), username="elastic", password=Secret("pw"))
    )
    assert basic == "Basic " + base64.b64encode(b"elastic:pw").decode()
    assert authorization_header(ElasticsearchConfig(hosts=("http://x",))) is None


def test_check_reports_version_cluster_and_privileges(srv: BulkServer, out: ElasticsearchOutput) -> None:
    line = out.check()
    assert "Elasticsearch 8.15.0" in line
    assert "inferwatch-fake" in line
    assert "may write logs-inferwatch.*-*" in line


def test_check_unreachable_raises_unavailable() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed when the block ends: nothing listens there
    out = ElasticsearchOutput(ElasticsearchConfig(hosts=(f"http://127.0.0.1:{port}",)))
    with pytest.raises(OutputUnavailable, match="cannot reach"):
        out.check()


def test_second_host_used_when_first_is_down(srv: BulkServer) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{s.getsockname()[1]}"
    out = ElasticsearchOutput(ElasticsearchConfig(hosts=(dead, srv.url)))

    assert out.send(body(("a", doc())), 1)[0].outcome is Outcome.CREATED


def test_plain_http_bulk_headers(srv: BulkServer, out: ElasticsearchOutput) -> None:
    # The fake only gunzips when told Content-Encoding: gzip; a wrong header would fail to parse.
    assert [r.outcome for r in out.send(body(("a", doc()), ("b", doc())), 2)] == [Outcome.CREATED] * 2
    assert srv.stats()["bulk_requests"] == 1


# -- TLS ------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 made with the openssl command."""
    if shutil.which("openssl") is None:
        pytest.skip("needs the openssl command")
    d = tmp_path_factory.mktemp("tls")
    cert, key = d / "cert.pem", d / "key.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
    )
    return cert, key


def fingerprint(cert: Path) -> str:
    der = ssl.PEM_cert_to_DER_cert(cert.read_text())
    return ":".join(f"{b:02X}" for b in hashlib.sha256(der).digest())


@pytest.fixture
def tls_srv(certificate: tuple[Path, Path]) -> Iterator[BulkServer]:
    with BulkServer(tls=certificate) as server:
        yield server


def test_tls_verification_is_on_by_default(tls_srv: BulkServer) -> None:
    out = ElasticsearchOutput(ElasticsearchConfig(hosts=(tls_srv.url,)))
    with pytest.raises(OutputRefused, match="ca_certs"):
        out.send(body(("a", doc())), 1)
    assert tls_srv.ids() == {}


def test_tls_with_the_ca_file(tls_srv: BulkServer, certificate: tuple[Path, Path]) -> None:
    out = ElasticsearchOutput(ElasticsearchConfig(hosts=(tls_srv.url,), ca_certs=certificate[0]))
    assert out.send(body(("a", doc())), 1)[0].outcome is Outcome.CREATED


def test_tls_with_a_pinned_fingerprint(tls_srv: BulkServer, certificate: tuple[Path, Path]) -> None:
    good = ElasticsearchOutput(
        ElasticsearchConfig(hosts=(tls_srv.url,), ssl_assert_fingerprint=fingerprint(certificate[0]))
    )
    assert good.send(body(("a", doc())), 1)[0].outcome is Outcome.CREATED

    wrong = ElasticsearchOutput(
        ElasticsearchConfig(hosts=(tls_srv.url,), ssl_assert_fingerprint="AB:" * 31 + "AB")
    )
    with pytest.raises(OutputRefused):
        wrong.send(body(("b", doc())), 1)
    assert set(tls_srv.ids()) == {"a"}


def test_tls_without_verification_when_asked(tls_srv: BulkServer) -> None:
    out = ElasticsearchOutput(ElasticsearchConfig(hosts=(tls_srv.url,), verify_certs=False))
    assert out.send(body(("a", doc())), 1)[0].outcome is Outcome.CREATED


def test_connection_lost_once_is_resent_at_once_and_answers_duplicate(
    srv: BulkServer, out: ElasticsearchOutput
) -> None:
    srv.set_faults(drop_next=1)  # stored, then the connection closes without an answer

    results = out.send(body(("a", doc())), 1)

    assert [(r.outcome, r.status) for r in results] == [(Outcome.DUPLICATE, 409)]
    assert srv.ids() == {"a": 1}
    assert srv.stats()["bulk_requests"] == 2


def test_check_refuses_credentials_that_cannot_create_documents(
    srv: BulkServer, out: ElasticsearchOutput
) -> None:
    srv.set_faults(denied_privileges=("create_doc", "auto_configure"))
    with pytest.raises(OutputRefused, match="missing auto_configure, create_doc"):
        out.check()


def test_check_warns_when_new_data_streams_cannot_be_created(
    srv: BulkServer, out: ElasticsearchOutput
) -> None:
    srv.set_faults(denied_privileges=("auto_configure",))
    assert "not create new ones: grant auto_configure" in out.check()


def test_check_with_security_off(srv: BulkServer, out: ElasticsearchOutput) -> None:
    srv.set_faults(security=False)
    line = out.check()
    assert line.startswith("Elasticsearch 8.15.0 at http://127.0.0.1:")
    assert "security off" in line


def test_check_with_wrong_credentials(srv: BulkServer, out: ElasticsearchOutput) -> None:
    srv.set_faults(require_auth="ApiKey right")
    with pytest.raises(OutputRefused, match="refused the credentials"):
        out.check()


class _Canned:
    """A loopback HTTP server answering every POST with one canned (status, headers, body)."""

    def __init__(self, status: int, headers: dict[str, str], body: bytes) -> None:
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        canned = (status, headers, body)

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length", "0")))
                code, extra, payload = canned
                self.send_response(code)
                for k, v in extra.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)


_ES = {"X-Elastic-Product": "Elasticsearch", "Content-Type": "application/json"}


@pytest.mark.parametrize(
    ("status", "headers", "answer", "expected_status", "expected_retry_after"),
    [
        (502, {"Content-Type": "text/html"}, b"<html><h1>502 Bad Gateway</h1></html>", 502, None),
        (503, {"Retry-After": "7"}, b"<html>maintenance</html>", 503, 7.0),
        (429, {**_ES, "Retry-After": "86400"}, b'{"error":"too many"}', 429, 86400.0),
        (200, _ES, b"<html>not json</html>", 200, None),
        (200, _ES, b'{"errors":false,"items":[{"create":{"status":201}}]}', 200, None),  # 1 of 2
        (
            200,
            _ES,
            b'{"errors":true,"items":[{"create":{"status":201}},{"create":{"status":429}},'
            b'{"create":{"status":201}}]}',
            200,
            None,
        ),  # 3 answers for 2 items
    ],
)
def test_elasticsearch_answers_that_leave_the_whole_body_for_a_retry(
    status: int,
    headers: dict[str, str],
    answer: bytes,
    expected_status: int,
    expected_retry_after: float | None,
) -> None:
    from inferwatch.agent import bulkbody
    from inferwatch.agent.outputs import OutputUnavailable
    from inferwatch.agent.outputs.elasticsearch import ElasticsearchOutput
    from inferwatch.core.config import ElasticsearchConfig
    from inferwatch.core.configschema import Duration

    server = _Canned(status, headers, answer)
    out = ElasticsearchOutput(ElasticsearchConfig(hosts=(server.url,), request_timeout=Duration(5.0)))
    try:
        body = bulkbody.encode_items(
            [("logs-inferwatch.m-default", "a", b"{}"), ("logs-inferwatch.m-default", "b", b"{}")]
        )
        with pytest.raises(OutputUnavailable) as caught:
            out.send(body, 2)
        assert not caught.value.permanent
        assert caught.value.status == expected_status
        assert caught.value.retry_after == expected_retry_after
        if expected_retry_after is not None:  # the wait honours it, capped at 60 s
            assert Backoff(initial=0.001, cap=60.0).next(caught.value.retry_after) == min(
                expected_retry_after, 60.0
            )
    finally:
        out.close()
        server.close()


def test_413_parts_keep_compression_level_0(srv: BulkServer) -> None:
    """Level 0 means off: the parts of a split body are stored too, not compressed at level 1
    (which squeezed these repetitive documents under the limit at the first split)."""
    output = ElasticsearchOutput(
        ElasticsearchConfig(hosts=(srv.url,), request_timeout=Duration(5.0), compression_level=0)
    )
    try:
        docs: list[tuple[str, dict[str, object]]] = [(f"id{i}", {"text": "a" * 2000}) for i in range(8)]
        srv.set_faults(max_body_bytes=3 * 2100)  # three stored documents, or all eight compressed
        stored = gzip.compress(gzip.decompress(body(*docs)), compresslevel=0)

        results = output.send(stored, 8)

        assert [r.outcome for r in results] == [Outcome.CREATED] * 8
        assert srv.stats()["bulk_requests"] == 4  # quarters: stored halves are over the limit too
    finally:
        output.close()
