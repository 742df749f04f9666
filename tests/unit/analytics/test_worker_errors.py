"""Errors in the worker (issue 12), through the real CLI on real files: an unreadable baseline
names its file and the fix and skips only its model (``once``), once per episode (``run``, with
the skip counted in the worker's metrics); a data dir the worker cannot write is reported after
the findings; a damaged local-store segment is reported, never skipped silently; ``once
--dry-run`` writes nothing."""

from __future__ import annotations

import ctypes
import json
import os
import stat
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest

from tests.scenario.harness import free_port
from tests.unit.analytics.test_cli import CONFIG, T0, invoke
from tests.unit.analytics.test_worker_metrics import scrape, wait_until, worker

TWO_MODELS = CONFIG + "  other:\n    features: {country: categorical, age: numeric}\n"
AT = "2026-11-22T11:00:00Z"


def segment(tmp_path: Path, model: str, start: datetime, n: int = 300) -> Path:
    """One local-store segment as the agent's local output writes it: n documents, every tenth
    with a country the training data never had."""
    seg = (
        tmp_path
        / "data"
        / "store"
        / f"logs-inferwatch.{model}-default"
        / f"{int(start.timestamp()):020d}.ndjson"
    )
    seg.parent.mkdir(parents=True, exist_ok=True)
    lines = []
    for i in range(n):
        doc = {
            "@timestamp": (start + timedelta(seconds=i))
            .isoformat(timespec="milliseconds")
            .replace("+00:00", "Z"),
            "ml": {
                "model": {"name": model, "version": "1"},
                "inputs": {"country": "XX" if i % 10 == 0 else ("DE" if i % 3 else "FR"), "age": 20 + i % 50},
            },
            "_id": f"{model}-{i}",
        }
        lines.append(orjson.dumps(doc) + b"\n")
    seg.write_bytes(b"".join(lines))
    return seg


def project(tmp_path: Path, config: str = TWO_MODELS, start: datetime = T0) -> Path:
    """A config with two models, a baseline of version 1 for each and a window of logs for each."""
    cfg = tmp_path / "inferwatch.yml"
    cfg.write_text(config, encoding="utf-8")
    train = tmp_path / "train.csv"
    rows = ["country,age"] + [f"{'DE' if i % 3 else 'FR'},{20 + i % 50}" for i in range(300)]
    train.write_text("\n".join(rows) + "\n", encoding="utf-8")
    for model in ("churn", "other"):
        code, _, stderr = invoke(
            "baseline", "build", "-c", str(cfg), "-m", model, "-v", "1", "--data", str(train)
        )
        assert code == 0, stderr
        segment(tmp_path, model, start)
    return cfg


def truncate(path: Path, keep: int) -> None:
    path.write_bytes(path.read_bytes()[:keep])


# --- 1. an unreadable baseline ------------------------------------------------------------------


@pytest.mark.parametrize("damage", ["truncated", "garbage"])
def test_once_names_an_unreadable_baseline_and_its_fix_and_evaluates_the_other_model(
    tmp_path: Path, damage: str
) -> None:
    cfg = project(tmp_path)
    broken = tmp_path / "data" / "baselines" / "churn@1.json"
    if damage == "truncated":
        truncate(broken, 100)
    else:
        broken.write_bytes(b"\x00\xff\xfe not json at all")
    code, stdout, stderr = invoke("analytics", "once", "-c", str(cfg), "--at", AT)
    assert code == 1, stderr
    assert "unexpected error" not in stderr and "this is a bug" not in stderr
    assert f"model churn skipped: baseline churn@1 is unreadable: {broken}" in stderr
    assert f"fix: rebuild it with `inferwatch baseline build -c {cfg} -m churn -v 1" in stderr
    assert f"or restore {broken} from a backup" in stderr
    assert "of 2 models, 1 skipped (baseline_unreadable): churn" in stderr
    # the other model was evaluated, its findings printed and its alerts written
    assert "model other, window" in stdout and "unseen_category" in stdout
    assert "model churn, window" not in stdout
    alerts = json.loads((tmp_path / "data" / "alerts" / "alerts.json").read_bytes())
    assert {d["model"] for d in alerts.values()} == {"other"}


def test_once_json_keeps_stdout_a_json_array_of_the_models_evaluated(tmp_path: Path) -> None:
    cfg = project(tmp_path)
    truncate(tmp_path / "data" / "baselines" / "other@1.json", 50)
    code, stdout, stderr = invoke("analytics", "once", "-c", str(cfg), "--at", AT, "--json")
    assert code == 1 and "model other skipped" in stderr
    findings = json.loads(stdout)
    assert findings and {f["model"] for f in findings} == {"churn"}


def test_run_says_it_once_per_episode_counts_the_skips_and_keeps_evaluating(tmp_path: Path) -> None:
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=40)
    port = free_port()
    config = TWO_MODELS.replace("interval: 1h", f'interval: 1s\n  metrics: {{listen: "127.0.0.1:{port}"}}')
    project(tmp_path, config, start)
    broken = tmp_path / "data" / "baselines" / "churn@1.json"
    good = broken.read_bytes()
    truncate(broken, 100)
    base = f"http://127.0.0.1:{port}"
    skipped = (
        "inferwatch_analytics_evaluations_skipped_total",
        (("model", "churn"), ("reason", "baseline_unreadable")),
    )
    other_ok = ("inferwatch_analytics_evaluations_total", (("model", "other"), ("result", "ok")))
    churn_ok = ("inferwatch_analytics_evaluations_total", (("model", "churn"), ("result", "ok")))
    with worker(tmp_path, config) as (proc, log):
        # several intervals: the skip is counted each time, the other model evaluated each time
        wait_until(lambda: (scrape(base) or {}).get(skipped, 0) >= 3, proc, log)
        wait_until(lambda: (scrape(base) or {}).get(other_ok, 0) >= 3, proc, log)
        text = log.read_text()
        failures = [line for line in text.splitlines() if "job evaluate:churn failed" in line]
        assert len(failures) == 1, text  # once per episode, not every interval
        assert f"baseline churn@1 is unreadable: {broken}" in failures[0]
        assert "inferwatch baseline build" in failures[0] and "restore" in failures[0]
        assert "evaluate:other failed" not in text
        # restoring the file ends the episode: said once, and churn is evaluated again
        broken.write_bytes(good)
        wait_until(lambda: "job evaluate:churn succeeded again" in log.read_text(), proc, log)
        wait_until(lambda: (scrape(base) or {}).get(churn_ok, 0) >= 1, proc, log)


# --- 2. a data dir the worker cannot write -------------------------------------------------------


def without_root_override() -> None:
    """In the child, before exec: drop CAP_DAC_OVERRIDE from the bounding set, so that root too
    is refused what file modes refuse (exec gives root only the bounding set)."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(24, 1, 0, 0, 0) != 0:  # PR_CAPBSET_DROP, CAP_DAC_OVERRIDE
        raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP, CAP_DAC_OVERRIDE)")


@contextmanager
def read_only(root: Path) -> Iterator[dict[str, Any]]:
    """``root``'s tree without a write bit, for a process started with the arguments yielded (as
    root, one that cannot override file modes); the write bits come back afterwards."""
    paths = [root, *root.rglob("*")]
    modes = {p: p.stat().st_mode for p in paths}
    writable = stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH
    for p in paths:
        p.chmod(modes[p] & ~writable)
    try:
        yield {"preexec_fn": without_root_override} if os.geteuid() == 0 else {}
    finally:
        for p in paths:
            p.chmod(modes[p])


def once_process(cfg: Path, *args: str, **user: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "inferwatch.core", "analytics", "once", "-c", str(cfg), "--at", AT, *args],
        capture_output=True,
        text=True,
        timeout=120,
        **user,
    )


def finding_rows(stdout: str, detector: str) -> int:
    """Rows of the findings table of ``detector`` (one per model here)."""
    return sum(line.split()[1:2] == [detector] for line in stdout.splitlines() if line.startswith("critical"))


def snapshot(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_once_prints_its_findings_then_reports_a_data_dir_it_cannot_write(tmp_path: Path) -> None:
    cfg = project(tmp_path)
    assert invoke("analytics", "once", "-c", str(cfg), "--at", "2026-11-22T09:00:00Z")[0] == 0  # dirs exist
    data = tmp_path / "data"
    before = snapshot(data)
    with read_only(data) as user:
        proc = once_process(cfg, **user)
        dry = once_process(cfg, "--dry-run", **user)
    assert proc.returncode == 1, proc.stderr
    assert "unexpected error" not in proc.stderr and "Traceback" not in proc.stderr
    # the findings it computed are printed, for both models
    assert finding_rows(proc.stdout, "unseen_category") == 2 and "model other, window" in proc.stdout
    # then the failure: which model, which path, why, and the fix
    assert "model churn: its alerts and detector state could not be written" in proc.stderr
    assert f"{data / 'alerts' / 'alerts.json'}" in proc.stderr and "Permission denied" in proc.stderr
    assert "of 2 models, 2 evaluated but not written: churn, other" in proc.stderr
    assert f"fix: make {data} and what is under it writable" in proc.stderr and "--dry-run" in proc.stderr
    assert snapshot(data) == before
    # --dry-run needs no write: the same evaluation succeeds on the read-only data dir
    assert dry.returncode == 0, dry.stderr
    assert finding_rows(dry.stdout, "unseen_category") == 2 and "dry run: nothing written" in dry.stdout


def test_alerts_that_cannot_be_written_keep_the_state_so_the_window_is_evaluated_again(
    tmp_path: Path,
) -> None:
    """The evaluation's order is kept: alerts first, then the detector state, so a window whose
    alerts were not written is not marked evaluated and its alerts open on the next run."""
    cfg = project(tmp_path)
    assert invoke("analytics", "once", "-c", str(cfg), "--at", "2026-11-22T09:00:00Z")[0] == 0  # dirs exist
    state = tmp_path / "data" / "analytics-state" / "churn.state.json"
    kept = state.read_bytes()
    with read_only(tmp_path / "data" / "alerts") as user:
        proc = once_process(cfg, "-m", "churn", **user)
    assert proc.returncode == 1 and "alerts.json" in proc.stderr, proc.stderr
    assert state.read_bytes() == kept  # not marked evaluated
    code, stdout, _ = invoke("analytics", "once", "-c", str(cfg), "--at", AT, "-m", "churn")
    assert code == 0 and "alert opened: unseen_category inputs.country" in stdout
    assert json.loads(state.read_bytes())["last_window"] == "2026-11-22T11:00:00+00:00"


# --- 4. once --dry-run -----------------------------------------------------------------------


def test_once_dry_run_evaluates_and_prints_but_writes_no_alert_and_no_state(tmp_path: Path) -> None:
    cfg = project(tmp_path)
    data = tmp_path / "data"
    code, stdout, stderr = invoke("analytics", "once", "-c", str(cfg), "--at", AT, "--dry-run")
    assert code == 0, stderr
    assert "unseen_category" in stdout and "alert opened: unseen_category inputs.country" in stdout
    assert stdout.count("dry run: nothing written (alerts, detector state)") == 2
    assert not list((data / "alerts").iterdir())
    assert not list((data / "analytics-state").glob("*.state.json"))

    code, stdout, stderr = invoke("analytics", "once", "-c", str(cfg), "--at", AT, "--dry-run", "--json")
    assert code == 0 and json.loads(stdout) and "note: dry run: nothing written" in stderr
    assert not list((data / "alerts").iterdir())

    # the dry runs left no trace: the real run opens the alerts of that window, and writes them
    code, stdout, _ = invoke("analytics", "once", "-c", str(cfg), "--at", AT)
    assert code == 0 and "alert opened: unseen_category inputs.country" in stdout
    assert "dry run" not in stdout
    assert (data / "alerts" / "alerts.json").exists()
    assert {p.name for p in (data / "analytics-state").glob("*.state.json")} == {
        "churn.state.json",
        "other.state.json",
    }
    before = snapshot(data)
    assert invoke("analytics", "once", "-c", str(cfg), "--at", "2026-11-22T12:00:00Z", "--dry-run")[0] == 0
    assert snapshot(data) == before


def test_once_help_says_what_it_writes_without_dry_run() -> None:
    code, stdout, _ = invoke("analytics", "once", "--help")
    assert code == 0 and "--dry-run" in stdout
    assert "alert and incident documents" in stdout and "detector state" in stdout


# --- 3. a damaged local-store segment ---------------------------------------------------------


def cut_at_line(path: Path, line: int, keep: int) -> None:
    """Cut ``path`` inside its ``line``-th line (0-based), ``keep`` bytes into it."""
    data = path.read_bytes()
    start = sum(len(x) for x in data.splitlines(keepends=True)[:line])
    path.write_bytes(data[: start + keep])


def test_once_reports_a_truncated_segment_with_its_numbers(tmp_path: Path) -> None:
    cfg = project(tmp_path)
    seg = segment(tmp_path, "churn", T0, n=3000)
    cut_at_line(seg, 2499, 40)  # 2,499 whole documents and a torn one, as a disk cut short leaves
    lines = seg.read_bytes().split(b"\n")
    lines[7] = b'{"@timestamp": "2026-11-22T10:00:07Z", "ml": {'  # and one garbled line inside
    seg.write_bytes(b"\n".join(lines))
    code, stdout, stderr = invoke("analytics", "once", "-c", str(cfg), "--at", AT, "-m", "churn")
    assert code == 0, stderr
    said = f"store segment {seg}: 2 of 2,500 lines skipped (1 invalid_json, 1 torn_last_line)"
    assert f"  note: {said}: the agent writes whole segments atomically" in stdout
    assert "in 2,498 values" in stdout  # what was counted is what the note says

    code, stdout, stderr = invoke("analytics", "once", "-c", str(cfg), "--at", AT, "-m", "churn", "--json")
    assert code == 0 and json.loads(stdout) and f"note: {said}" in stderr


def test_a_damaged_segment_is_logged_when_read_not_at_every_evaluation(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from inferwatch.analytics.sources.local import LocalSource
    from inferwatch.analytics.windows import aligned_window

    seg = segment(tmp_path, "churn", T0, n=100)
    cut_at_line(seg, 99, 10)
    source = LocalSource(tmp_path / "data" / "store")
    window = aligned_window(T0 + timedelta(hours=1), 3600.0, 3600.0)
    with caplog.at_level("WARNING", logger="inferwatch.analytics.sources.local"):
        for _ in range(3):
            assert int(source.model_counts("churn", window).versions["docs"].sum()) == 99
    assert [r.getMessage()[:80] for r in caplog.records] == [
        f"local store segment {seg}: 1 of 100 lines"[:80]
    ]
    (skipped,) = source.skipped_lines("churn")
    assert (skipped.segment, skipped.documents, dict(skipped.reasons)) == (
        str(seg),
        99,
        {"torn_last_line": 1},
    )
    assert source.dropped == {"torn_last_line": 1}

    segment(tmp_path, "churn", T0, n=100)  # the segment restored: read again, nothing skipped
    assert int(source.model_counts("churn", window).versions["docs"].sum()) == 100
    assert source.skipped_lines("churn") == []


def test_models_read_at_once_from_one_local_store_do_not_fail_each_other(tmp_path: Path) -> None:
    """The worker evaluates its models in a thread pool over one source: a model's new segment
    spans must not break another's index write ('dictionary changed size during iteration',
    which made 'analytics run' fail an evaluation now and then)."""
    import threading

    from inferwatch.analytics.sources.local import LocalSource
    from inferwatch.analytics.windows import aligned_window

    for model in ("churn", "other"):
        for k in range(100):
            segment(tmp_path, model, T0 + timedelta(seconds=k), n=2)
    window = aligned_window(T0 + timedelta(hours=1), 3600.0, 3600.0)
    errors: list[BaseException] = []
    for attempt in range(10):
        source = LocalSource(tmp_path / "data" / "store", index_file=tmp_path / f"index-{attempt}.json")
        both = threading.Barrier(2)

        def read(model: str, source: LocalSource = source, both: threading.Barrier = both) -> None:
            both.wait()
            try:
                source.model_counts(model, window)
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=read, args=(m,)) for m in ("churn", "other")]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert errors == []
