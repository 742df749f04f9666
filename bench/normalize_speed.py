"""Lines per second of the agent's CPU hot path: ``Normalizer`` and ``bulkbody.encode``; the
read loop's ``bulk_items`` both with the native normalizer (agent/native) and without.

Generates realistic prediction lines (~400 bytes: nested inputs, one free-text field, a
configured model with numeric, categorical and text features), normalizes them in
``LineBatch``es of 2,000 lines (the default ``batch.max_docs``), and gzip-encodes each batch the
way the pipeline spools it. Single-threaded; prints one line per stage.

    .venv/bin/python bench/normalize_speed.py [--lines 200000] [--level 1]
"""

from __future__ import annotations

import argparse
import random
import time
import uuid
from collections.abc import Callable
from types import MappingProxyType

import orjson

from inferwatch.agent.bulkbody import encode
from inferwatch.agent.model import FileId, LineBatch, Source
from inferwatch.agent.normalize import Normalizer
from inferwatch.core.config import InputConfig, ModelConfig

WORDS = [
    "the",
    "delivery",
    "was",
    "late",
    "again",
    "and",
    "support",
    "did",
    "not",
    "answer",
    "my",
    "emails",
    "great",
    "product",
    "works",
    "fine",
    "price",
    "too",
    "high",
    "would",
    "recommend",
    "cancel",
    "subscription",
    "app",
    "crashes",
    "login",
    "slow",
    "refund",
    "please",
    "thanks",
]
COUNTRIES = ("DE", "FR", "US", "GB", "ES", "IT", "NL", "PL")
MODEL = ModelConfig(
    features=MappingProxyType(
        {
            "age": "numeric",
            "country": "categorical",
            "plan": "categorical",
            "tenure_months": "numeric",
            "user.device": "categorical",
            "user.sessions_7d": "numeric",
            "review_text": "text",
        }
    ),
    outputs=MappingProxyType({"score": "numeric", "label": "categorical"}),
)


def make_lines(n: int, rng: random.Random) -> list[bytes]:
    lines = []
    for i in range(n):
        record = {
            "timestamp": f"2026-11-22T10:{i // 60000 % 60:02d}:{i // 1000 % 60:02d}.{i % 1000:03d}Z",
            "model": "churn-classifier",
            "model_version": "1.4.2",
            "prediction_id": uuid.UUID(int=rng.getrandbits(128)).hex,
            "inputs": {
                "age": rng.randint(18, 90),
                "country": rng.choice(COUNTRIES),
                "plan": rng.choice(("free", "basic", "premium")),
                "tenure_months": rng.randint(0, 120),
                "user": {
                    "device": rng.choice(("ios", "android", "web")),
                    "sessions_7d": rng.randint(0, 40),
                    "avg_basket": round(rng.uniform(5, 200), 2),
                },
                "review_text": " ".join(rng.choices(WORDS, k=rng.randint(6, 16))).capitalize() + ".",
            },
            "outputs": {"score": round(rng.random(), 4), "label": rng.choice(("churn", "stay"))},
            "latency_ms": round(rng.uniform(2, 40), 2),
        }
        lines.append(orjson.dumps(record))
    return lines


def batches(lines: list[bytes], size: int) -> list[LineBatch]:
    fid = FileId("ab" * 16)
    out = []
    offset = 0
    for start in range(0, len(lines), size):
        chunk = lines[start : start + size]
        offsets = []
        for line in chunk:
            offsets.append(offset)
            offset += len(line) + 1
        out.append(LineBatch(fid, "/var/log/models/predictions-1.jsonl", 0, offsets, chunk, offset))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=200_000)
    parser.add_argument("--batch", type=int, default=2000)
    parser.add_argument("--level", type=int, default=1)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    lines = make_lines(args.lines, random.Random(7))
    mean = sum(map(len, lines)) / len(lines)
    work = batches(lines, args.batch)
    normalizer = Normalizer(
        InputConfig(paths=("/var/log/models/*.jsonl",)),
        MappingProxyType({"churn_classifier": MODEL}),
        "default",
        host="bench",
        agent_version="bench",
    )
    ingested = "2026-11-22T11:00:00.000Z"

    # As the pipeline does it: normalize one batch, encode it, let it go. CPU time of this
    # thread, so that other processes on the machine do not count; the best of --repeat runs.
    best_normalize = best_encode = float("inf")
    wall = float("inf")
    payload_bytes = body_bytes = 0
    for _ in range(args.repeat):
        normalize_s = encode_s = 0.0
        payload_bytes = body_bytes = 0
        wall_start = time.perf_counter()
        for batch in work:
            t0 = time.thread_time()
            events, rejects = normalizer.normalize_batch(batch, ingested)
            t1 = time.thread_time()
            payload = encode(events, args.level)
            t2 = time.thread_time()
            assert not rejects
            normalize_s += t1 - t0
            encode_s += t2 - t1
            payload_bytes += len(payload)
            body_bytes += sum(len(e.body) for e in events)
        wall = min(wall, time.perf_counter() - wall_start)
        best_normalize = min(best_normalize, normalize_s)
        best_encode = min(best_encode, encode_s)

    def per_line_call() -> None:  # what a caller without the batch API pays (a Source per line)
        for batch in work:
            for line, offset in zip(batch.lines, batch.offsets, strict=True):
                normalizer(line, Source(batch.file_id, batch.path, offset, 0), ingested)

    python_only = Normalizer(
        normalizer.input_config,
        normalizer.models,
        "default",
        host="bench",
        agent_version="bench",
        accelerate=False,
    )

    def bulk_items(which: Normalizer) -> Callable[[], None]:
        def run() -> None:  # the read loop's and the parse workers' path: ready bulk items
            for batch in work:
                which.bulk_items(batch, ingested)

        return run

    def json_floor() -> None:  # parse and serialize only: the part no Python change can remove
        for line in lines:
            orjson.dumps(orjson.loads(line))

    n = args.lines
    print(f"lines: {n}, mean line {mean:.0f} B, mean document {body_bytes / n:.0f} B, batch {args.batch}")
    report("normalize_batch", best_normalize, n)
    report("normalize(line, Source)", cpu_best(per_line_call, args.repeat), n)
    report(
        f"bulkbody.encode (gzip {args.level})", best_encode, n, f", {payload_bytes / n:.0f} B/line compressed"
    )
    report("both, one thread", best_normalize + best_encode, n)
    report("bulk_items, Python", cpu_best(bulk_items(python_only), args.repeat), n)
    if normalizer.fast_path is None:
        print(f"{'bulk_items, native':26s} not installed (pip install ./agent/native)")
    else:
        report("bulk_items, native", cpu_best(bulk_items(normalizer), args.repeat), n)
    report("orjson loads+dumps floor", cpu_best(json_floor, args.repeat), n)
    print(
        f"{'wall clock, both':26s} {n / wall:>10,.0f} lines/s  (best run; depends on what else the machine runs)"
    )


def cpu_best(fn: Callable[[], None], repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.thread_time()
        fn()
        best = min(best, time.thread_time() - start)
    return best


def report(what: str, seconds: float, n: int, extra: str = "") -> None:
    print(f"{what:26s} {n / seconds:>10,.0f} lines/s  ({seconds / n * 1e6:.2f} us/line CPU{extra})")


if __name__ == "__main__":
    main()
