"""A model's history for report tests and benches, without the agent: the demo's cars table written
into a local store in the agent's document shape, window after window, with failures injected
(horsepower vanishing, a new origin, unknown makers in the names), its baseline stored, and the
worker's evaluator run over every window so that real alerts and incidents are in the alert sink.

    scenario = write_scenario(data_dir, windows=24, per_window=400)
    scenario.config          # a loaded Config on data_dir (local store)
    scenario.period          # Window of the whole history
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import orjson
import pandas as pd

from inferwatch.analytics.baseline import build_baseline
from inferwatch.analytics.demo.data import FEATURES, MODEL, OUTPUTS, VERSION, load_cars
from inferwatch.analytics.model import FeatureKind, Window
from inferwatch.analytics.wiring import backends, build_evaluator
from inferwatch.core.config import Config, load_config
from inferwatch.core.contract import data_stream, dataset
from inferwatch.core.tokenize import tokenize

ORIGIN = datetime(2026, 11, 20, tzinfo=UTC)
SPAN = 3600.0


@dataclass(frozen=True)
class Failure:
    kind: str  # hp_missing | korea | new_makers
    start: int  # first window
    end: int  # window after the last

    @property
    def describe(self) -> str:
        return {
            "hp_missing": "the horsepower field disappears from every request",
            "korea": "cars from a new origin, 'Korea' (25% of requests)",
            "new_makers": "60% of car names come from makers never seen in training",
        }[self.kind]


FAILURES = (Failure("hp_missing", 3, 5), Failure("korea", 9, 11), Failure("new_makers", 15, 17))


@dataclass(frozen=True)
class Scenario:
    config: Config
    period: Window
    failures: tuple[Failure, ...]
    documents: int

    def window_start(self, k: int) -> datetime:
        return self.period.start + timedelta(seconds=k * SPAN)


CONFIG = """
agent:
  data_dir: {data_dir}
  inputs: [{{paths: ["./logs/*.jsonl"]}}]
analytics:
  interval: 1h
  window: 1h
  min_window_docs: 100
models:
  {model}:
    features: {features}
    outputs: {outputs}
"""


def _kinds() -> dict[str, FeatureKind]:
    out: dict[str, FeatureKind] = {f"inputs.{k}": v for k, v in FEATURES.items()}  # type: ignore[misc]
    out.update({f"outputs.{k}": v for k, v in OUTPUTS.items()})  # type: ignore[misc]
    return out


def _outputs(rows: pd.DataFrame, rng: np.random.Generator) -> tuple[np.ndarray, list[str]]:
    score = 1 / (1 + np.exp((rows["weight"].to_numpy() - 2800) / 400)) + rng.normal(0, 0.05, len(rows))
    score = np.clip(score, 0, 1)
    return score, ["efficient" if s >= 0.5 else "thirsty" for s in score]


def write_scenario(
    data_dir: Path,
    windows: int = 21,
    per_window: int = 400,
    failures: tuple[Failure, ...] = FAILURES,
    evaluate: bool = True,
    seed: int = 7,
) -> Scenario:
    data_dir.mkdir(parents=True, exist_ok=True)
    (data_dir / "inferwatch.yml").write_text(
        CONFIG.format(
            data_dir=data_dir,
            model=MODEL,
            features=orjson.dumps(FEATURES).decode(),
            outputs=orjson.dumps(OUTPUTS).decode(),
        ),
        encoding="utf-8",
    )
    cfg = load_config(data_dir / "inferwatch.yml")
    cars = load_cars()
    rng = np.random.default_rng(seed)
    train = cars.sample(frac=0.7, random_state=seed)
    score, label = _outputs(train, rng)
    frame = pd.DataFrame({f"inputs.{k}": train[k].to_numpy() for k in FEATURES})
    frame["outputs.score"], frame["outputs.label"] = score, label
    baseline = build_baseline(frame, MODEL, VERSION, _kinds(), "training:scenario", ORIGIN)
    chosen = backends(cfg)
    chosen.baselines.save(baseline)

    stream = data_stream(MODEL, cfg.agent.namespace)
    folder = data_dir / "store" / stream
    folder.mkdir(parents=True, exist_ok=True)
    total = 0
    for k in range(windows):
        rows = cars.sample(per_window, replace=True, random_state=seed * 1000 + k).reset_index(drop=True)
        active = {f.kind for f in failures if f.start <= k < f.end}
        if "korea" in active:
            rows.loc[rng.random(per_window) < 0.25, "origin"] = "Korea"
        if "new_makers" in active:
            mask = rng.random(per_window) < 0.6
            rows.loc[mask, "name"] = [f"tesla model {i % 7}" for i in range(int(mask.sum()))]
        score, label = _outputs(rows, rng)
        lines: list[bytes] = []
        for i, row in enumerate(rows.to_dict("records")):
            ts = ORIGIN + timedelta(seconds=k * SPAN + (i + 0.5) * SPAN / per_window)
            inputs = {c: (None if c == "horsepower" and "hp_missing" in active else row[c]) for c in FEATURES}
            inputs = {c: (float(v) if isinstance(v, np.floating) else v) for c, v in inputs.items()}
            doc = {
                "_id": f"w{k}-{i}",
                "@timestamp": ts.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
                "data_stream": {"type": "logs", "dataset": dataset(MODEL), "namespace": cfg.agent.namespace},
                "ml": {
                    "model": {"name": MODEL, "version": VERSION},
                    "inputs": inputs,
                    "outputs": {"score": float(score[i]), "label": label[i]},
                    "tokens": {"name": tokenize(str(row["name"]))},
                },
            }
            lines.append(orjson.dumps(doc))
        (folder / f"{k + 1:020d}.ndjson").write_bytes(b"\n".join(lines) + b"\n")
        total += len(lines)
    period = Window(ORIGIN, ORIGIN + timedelta(seconds=windows * SPAN))
    if evaluate:
        evaluator = build_evaluator(cfg, chosen)
        for k in range(windows):
            start = ORIGIN + timedelta(seconds=k * SPAN)
            evaluator.evaluate(MODEL, Window(start, start + timedelta(seconds=SPAN)))
    return Scenario(cfg, period, failures, total)
