"""The model-server helper writes whole lines in the shape the agent reads by default."""

from __future__ import annotations

import logging
import subprocess
import sys
import threading
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import orjson
import pytest

from inferwatch.agent import writer as writer_module
from inferwatch.agent.model import FileId, Source
from inferwatch.agent.normalize import Normalizer
from inferwatch.agent.writer import PredictionLogger, PredictionLogHandler, format_time, log_prediction
from inferwatch.core.config import InputConfig
from tests.unit.agent.helpers import TornWrite


def read_lines(path: Path) -> list[dict[str, Any]]:
    data = path.read_bytes()
    assert data.endswith(b"\n")
    return [orjson.loads(line) for line in data.splitlines()]


def test_a_line_has_the_default_shape(tmp_path: Path) -> None:
    path = tmp_path / "predictions.jsonl"
    with PredictionLogger(path, "churn-classifier", version="1.4.2") as logger:
        pid = logger.log(
            {"age": 41, "country": "DE"},
            {"score": 0.82},
            latency_ms=12.7,
            timestamp=datetime(2026, 11, 22, 10, 48, 12, 486999, tzinfo=UTC),
        )
    assert len(pid) == 32
    assert read_lines(path) == [
        {
            "timestamp": "2026-11-22T10:48:12.486Z",
            "model": "churn-classifier",
            "model_version": "1.4.2",
            "prediction_id": pid,
            "inputs": {"age": 41, "country": "DE"},
            "outputs": {"score": 0.82},
            "latency_ms": 12.7,
        }
    ]


def test_given_ids_are_kept_and_optional_fields_left_out(tmp_path: Path) -> None:
    path = tmp_path / "p.jsonl"
    with PredictionLogger(path, "m") as logger:
        assert (
            logger.log({"a": 1}, {"b": 2}, prediction_id="req-7", timestamp="2026-01-01T00:00:00.000Z")
            == "req-7"
        )
    assert read_lines(path) == [
        {
            "timestamp": "2026-01-01T00:00:00.000Z",
            "model": "m",
            "prediction_id": "req-7",
            "inputs": {"a": 1},
            "outputs": {"b": 2},
        }
    ]


def test_generated_ids_are_unique(tmp_path: Path) -> None:
    with PredictionLogger(tmp_path / "p.jsonl", "m") as logger:
        ids = {logger.log({}, {}) for _ in range(100)}
    assert len(ids) == 100


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (
            datetime(2026, 11, 22, 12, 0, 0, 1000, tzinfo=timezone(timedelta(hours=2))),
            "2026-11-22T10:00:00.001Z",
        ),
        (datetime(2026, 11, 22, 12, 0, 0), "2026-11-22T12:00:00.000Z"),
        (1763808492.25, "2025-11-22T10:48:12.250Z"),
        ("as given", "as given"),
    ],
)
def test_format_time(value: Any, expected: str) -> None:
    assert format_time(value) == expected


def test_lines_normalize_into_documents(tmp_path: Path) -> None:
    path = tmp_path / "p.jsonl"
    with PredictionLogger(path, "churn-classifier", version="2") as logger:
        pid = logger.log({"age": 41, "text": "Hi there"}, {"label": "stay"}, latency_ms=3)
    normalizer = Normalizer(InputConfig(paths=(str(path),), document_id="prediction_id"))
    line = path.read_bytes().rstrip(b"\n")
    event = normalizer(line, Source(FileId("a" * 32), str(path), 0, 0), "2026-01-01T00:00:00.000Z")
    doc = orjson.loads(event.body)
    assert event.index == "logs-inferwatch.churn_classifier-default"
    assert doc["ml"] == {
        "model": {"name": "churn-classifier", "version": "2"},
        "prediction": {"id": pid, "latency_ms": 3.0},
        "inputs": {"age": 41, "text": "Hi there"},
        "outputs": {"label": "stay"},
    }
    assert normalizer.counts["timestamp_missing"] == 0


def test_values_json_lacks_are_still_written(tmp_path: Path) -> None:
    path = tmp_path / "p.jsonl"

    class Label:
        def __str__(self) -> str:
            return "LABEL"

    inputs: dict[Any, Any] = {
        "when": datetime(2026, 1, 1, tzinfo=UTC),
        "tags": {"b"},
        "nan": float("nan"),
        3: "int key",
    }
    with PredictionLogger(path, "m") as logger:
        logger.log(inputs, Label())
    line = read_lines(path)[0]
    assert line["inputs"] == {"when": "2026-01-01T00:00:00+00:00", "tags": ["b"], "nan": None, "3": "int key"}
    assert line["outputs"] == "LABEL"


def test_threads_never_interleave_lines(tmp_path: Path) -> None:
    path = tmp_path / "p.jsonl"
    logger = PredictionLogger(path, "m")
    text = "x" * 5000  # longer than a pipe buffer's atomic size, to make interleaving visible

    def work(worker: int) -> None:
        for i in range(200):
            logger.log({"worker": worker, "i": i, "text": text}, {"ok": True})

    threads = [threading.Thread(target=work, args=(w,)) for w in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    logger.close()
    lines = read_lines(path)
    assert len(lines) == 1600
    assert {(line["inputs"]["worker"], line["inputs"]["i"]) for line in lines} == {
        (w, i) for w in range(8) for i in range(200)
    }


def test_rotation_renames_and_keeps_backup_count_files(tmp_path: Path) -> None:
    path = tmp_path / "p.jsonl"
    logger = PredictionLogger(path, "m", max_bytes=1000, backup_count=2)
    ids = [logger.log({"i": i, "pad": "y" * 100}, {}, timestamp="t") for i in range(30)]
    logger.close()
    files = sorted(p.name for p in tmp_path.iterdir())
    assert files == ["p.jsonl", "p.jsonl.1", "p.jsonl.2"]
    for name in files:
        size = (tmp_path / name).stat().st_size
        assert 0 < size <= 1000
    kept = [
        line["prediction_id"]
        for name in ("p.jsonl.2", "p.jsonl.1", "p.jsonl")
        for line in read_lines(tmp_path / name)
    ]
    assert kept == ids[-len(kept) :]  # the newest lines, in order, none cut


def test_rotation_applies_to_an_existing_full_file(tmp_path: Path) -> None:
    path = tmp_path / "p.jsonl"
    path.write_bytes(b"z" * 2000 + b"\n")
    with PredictionLogger(path, "m", max_bytes=1000) as logger:
        logger.log({}, {})
    assert (tmp_path / "p.jsonl.1").read_bytes() == b"z" * 2000 + b"\n"
    assert len(read_lines(path)) == 1


def test_appends_to_an_existing_file(tmp_path: Path) -> None:
    path = tmp_path / "p.jsonl"
    path.write_bytes(b'{"old": 1}\n')
    with PredictionLogger(path, "m") as logger:
        logger.log({}, {})
    assert len(read_lines(path)) == 2


def test_log_prediction_shares_one_logger_per_path(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "p.jsonl"
    a = log_prediction(path, "m", {"x": 1}, {"y": 2}, version="3", latency_ms=1.5)
    b = log_prediction(str(path), "m", {"x": 2}, {"y": 3}, prediction_id="given")
    lines = read_lines(path)
    assert [line["prediction_id"] for line in lines] == [a, "given"]
    assert lines[0]["model_version"] == "3"
    assert "model_version" not in lines[1]
    assert b == "given"


def test_the_logging_handler_writes_records_with_inputs(tmp_path: Path) -> None:
    path = tmp_path / "p.jsonl"
    handler = PredictionLogHandler(path, "churn-classifier", version="1")
    log = logging.getLogger("inferwatch.test.predictions")
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    log.propagate = False
    try:
        log.info(
            "prediction",
            extra={"inputs": {"age": 4}, "outputs": {"s": 1}, "latency_ms": 2.5, "prediction_id": "r1"},
        )
        log.info("not a prediction")
        log.info("other model", extra={"inputs": {}, "model": "other", "model_version": "7"})
    finally:
        log.removeHandler(handler)
        handler.close()
    lines = read_lines(path)
    assert len(lines) == 2
    first = lines[0]
    assert first["model"] == "churn-classifier"
    assert first["model_version"] == "1"
    assert first["prediction_id"] == "r1"
    assert first["inputs"] == {"age": 4}
    assert first["outputs"] == {"s": 1}
    assert first["latency_ms"] == 2.5
    assert first["timestamp"].endswith("Z")
    assert (lines[1]["model"], lines[1]["model_version"]) == ("other", "7")


def test_bad_arguments_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        PredictionLogger(tmp_path / "p", "m", max_bytes=0)
    with pytest.raises(ValueError):
        PredictionLogger(tmp_path / "p", "m", backup_count=0)


def test_threads_rotating_lose_and_cut_no_line(tmp_path: Path) -> None:
    path = tmp_path / "p.jsonl"
    logger = PredictionLogger(path, "m", max_bytes=4000, backup_count=1000)

    def work(worker: int) -> None:
        for i in range(100):
            logger.log({"worker": worker, "i": i}, {"ok": True})

    threads = [threading.Thread(target=work, args=(w,)) for w in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    logger.close()
    seen = []
    for file in tmp_path.iterdir():
        assert file.stat().st_size <= 4000
        seen += [(line["inputs"]["worker"], line["inputs"]["i"]) for line in read_lines(file)]
    assert len(list(tmp_path.glob("p.jsonl.*"))) > 5  # it did rotate, many times
    assert sorted(seen) == [(w, i) for w in range(4) for i in range(100)]


def test_the_writer_loads_nothing_outside_the_standard_library() -> None:
    """What model servers import adds no dependency: a fresh interpreter that imports the writer
    (and writes a line with it) has loaded only standard-library modules and the writer's own."""
    code = (
        "import sys, tempfile, os\n"
        "before = set(sys.modules)\n"
        "from inferwatch.agent.writer import PredictionLogger\n"
        "with tempfile.TemporaryDirectory() as d:\n"
        "    PredictionLogger(os.path.join(d, 'p.jsonl'), 'm').log({'a': 1.5}, {'s': 0.2})\n"
        "new = sorted(set(sys.modules) - before)\n"
        "print('\\n'.join(new))\n"
    )
    out = subprocess.run(
        [sys.executable, "-I", "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    loaded = out.stdout.split()
    assert "inferwatch.agent.writer" in loaded  # the probe itself works
    third_party = [
        m
        for m in loaded
        if m.split(".")[0] not in sys.stdlib_module_names and m.split(".")[0] != "inferwatch"
    ]
    ours = [m for m in loaded if m.split(".")[0] == "inferwatch"]
    assert third_party == []
    assert set(ours) <= {"inferwatch", "inferwatch.agent", "inferwatch.agent.writer"}


def test_numpy_values_are_written_as_plain_json(tmp_path: Path) -> None:
    np = pytest.importorskip("numpy")
    path = tmp_path / "p.jsonl"
    with PredictionLogger(path, "m") as logger:
        logger.log(
            {"f32": np.float32(0.5), "i64": np.int64(3), "arr": np.array([1, 2]), "nan": np.float64("nan")},
            {"inf": float("inf"), "t": (1, 2), np.int64(7): "numpy key"},
        )
    line = read_lines(path)[0]
    assert line["inputs"] == {"f32": 0.5, "i64": 3, "arr": [1, 2], "nan": None}
    assert line["outputs"] == {"inf": None, "t": [1, 2], "7": "numpy key"}


def test_writer_torn_line_does_not_swallow_the_next_prediction(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "p.jsonl"
    logger = PredictionLogger(path, model="m")
    logger.log({"a": 1}, {"s": 1}, prediction_id="one")
    torn = TornWrite()
    monkeypatch.setattr(writer_module.os, "write", torn)
    torn.state = "armed"
    with pytest.raises(OSError):
        logger.log({"a": 2}, {"s": 2}, prediction_id="two")
    logger.log({"a": 3}, {"s": 3}, prediction_id="three")
    logger.close()
    lines = path.read_bytes().split(b"\n")
    assert lines[-1] == b""  # ends with a newline
    parsed = []
    for line in lines[:-1]:
        try:
            parsed.append(orjson.loads(line)["prediction_id"])
        except orjson.JSONDecodeError:
            parsed.append(None)  # the torn half: one invalid line, dead-lettered by the agent
    assert parsed == ["one", None, "three"]


_WRITER_SCRIPT = """
import sys
from inferwatch.agent.writer import PredictionLogger
path, tag, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
logger = PredictionLogger(path, model="m")
pad = "x" * 3000  # lines longer than a pipe buffer page: interleaving would show
for i in range(n):
    logger.log({"pad": pad}, {"i": i}, prediction_id=f"{tag}-{i}")
logger.close()
"""


def test_writer_processes_appending_to_one_file_never_cut_a_line(tmp_path: Path) -> None:
    import subprocess
    import sys

    path = tmp_path / "shared.jsonl"
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _WRITER_SCRIPT, str(path), f"p{k}", "400"],
            cwd=Path(__file__).resolve().parents[3],
        )
        for k in range(4)
    ]
    assert [p.wait(120) for p in procs] == [0, 0, 0, 0]
    ids = [orjson.loads(line)["prediction_id"] for line in path.read_bytes().splitlines()]
    assert sorted(ids) == sorted(f"p{k}-{i}" for k in range(4) for i in range(400))
