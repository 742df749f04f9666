from __future__ import annotations

from pathlib import Path

import yaml

from inferwatch.analytics.demo.baseline import demo_baseline, heldout_oov, training_frame
from inferwatch.analytics.demo.data import load_cars, split
from inferwatch.analytics.demo.runner import DemoOptions, StoreCounter, config_dict, reset, write_config
from inferwatch.analytics.demo.stream import default_schedule
from inferwatch.analytics.model import FeatureBaseline
from inferwatch.core.config import parse_config


def test_the_demo_config_is_valid_and_watches_the_local_store(tmp_path: Path) -> None:
    path = write_config(tmp_path, 300)
    cfg = parse_config(path.read_text(encoding="utf-8"), {}, source=path)
    assert cfg.elasticsearch is None
    assert cfg.agent.data_dir == tmp_path.resolve()
    assert cfg.agent.inputs[0].paths == (str(tmp_path / "./logs/*.jsonl"),)
    assert cfg.analytics.interval == cfg.analytics.window == 300
    assert dict(cfg.models["cars_mpg"].features)["name"] == "text"
    assert yaml.safe_load(path.read_text(encoding="utf-8")) == config_dict(300)


def test_reset_removes_only_what_a_run_creates(tmp_path: Path) -> None:
    (tmp_path / "store" / "x").mkdir(parents=True)
    (tmp_path / "report.html").write_text("old")
    (tmp_path / "mine.txt").write_text("keep")
    reset(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine.txt"]


def test_store_counter_counts_documents_of_finished_segments(tmp_path: Path) -> None:
    seg = tmp_path / "logs-inferwatch.cars_mpg-default"
    seg.mkdir()
    (seg / "00000000000000000001.ndjson").write_bytes(b'{"a":1}\n{"a":2}\n')
    (seg / "00000000000000000002.ndjson.tmp").write_bytes(b'{"a":3}\n')
    counter = StoreCounter(tmp_path)
    assert counter.count() == 2
    (seg / "00000000000000000002.ndjson.tmp").rename(seg / "00000000000000000002.ndjson")
    assert counter.count() == 3


def test_windows_follow_the_duration_or_the_story() -> None:
    schedule = default_schedule()
    assert DemoOptions(Path("d"), speed=150, duration=40).windows(schedule) == 20
    assert DemoOptions(Path("d"), speed=100).windows(schedule) == 17 + 3 + 1


def test_heldout_oov_counts_texts_with_a_token_outside_the_vocabulary() -> None:
    import pandas as pd

    fb = FeatureBaseline("inputs.name", "text", 3, 0, vocabulary={"ford": 2, "pinto": 1})
    out = heldout_oov(fb, pd.Series(["Ford Pinto", "ford mustang", "", None]))
    assert (out.heldout_docs, out.heldout_oov_docs) == (2, 1)


def test_the_demo_baseline_describes_inputs_and_outputs_of_the_training_split() -> None:
    parts = split(load_cars())
    outputs = [{"score": 0.5, "label": "efficient" if i % 2 else "thirsty"} for i in range(len(parts.train))]
    frame = training_frame(parts.train, outputs)
    assert list(frame.columns) == [
        "inputs.origin",
        "inputs.cylinders",
        "inputs.horsepower",
        "inputs.weight",
        "inputs.acceleration",
        "inputs.name",
        "outputs.score",
        "outputs.label",
    ]
    b = demo_baseline(parts, outputs)
    assert (b.model, b.version, b.rows) == ("cars_mpg", "1.0", len(parts.train))
    assert set(b.features["inputs.origin"].categories) == {"USA", "Japan", "Europe"}
    name = b.features["inputs.name"]
    assert name.heldout_docs == len(parts.heldout)  # every car has a name
    assert 0 < name.heldout_oov_docs < name.heldout_docs


def test_the_split_holds_out_about_thirty_percent_with_every_category_in_training() -> None:
    cars = load_cars()
    parts = split(cars)
    assert len(parts.train) + len(parts.heldout) == len(cars) == 398
    assert 0.27 < len(parts.heldout) / len(cars) < 0.33
    for col in ("origin", "cylinders"):
        assert set(parts.heldout[col]) <= set(parts.train[col])
    assert parts.train["horsepower"].isna().sum() >= 1 and parts.heldout["horsepower"].isna().sum() >= 1
