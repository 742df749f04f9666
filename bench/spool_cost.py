"""What the spool costs: appends/s and MB/s for ~200 KB gzip bulk bodies with fsync on and off,
then read and ack throughput, printed as a small table.

    .venv/bin/python bench/spool_cost.py [--records 300] [--payload-kb 200] [--dir /path/on/target/disk]

The payload is a real NDJSON bulk body of prediction documents compressed by ``bulkbody.compress``
at level 1, so its size and compressibility match what the pipeline appends (one record per bulk
request). Run it on the disk that will hold ``data_dir``: fsync cost is a property of the device.
``ack`` is "each" when ack.json is written on every ack (the default), "1s" with
``ack_interval=1.0``.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import orjson

from inferwatch.agent import bulkbody
from inferwatch.agent.spool import Spool

MB = 1024**2
WORDS = [
    "great",
    "terrible",
    "slow",
    "fast",
    "refund",
    "broken",
    "love",
    "hate",
    "price",
    "delivery",
    "support",
    "app",
    "crash",
]


def bulk_body_gz(target_bytes: int, rng: random.Random) -> tuple[bytes, int]:
    """A level-1 gzip bulk body of prediction documents, about ``target_bytes`` compressed."""
    lines: list[bytes] = []
    docs = 0
    compressed = b""
    while len(compressed) < target_bytes:
        for _ in range(200):
            docs += 1
            doc = {
                "@timestamp": f"2026-11-22T22:15:00.{docs % 1000:03d}Z",
                "ml": {
                    "model": {"name": "churn-classifier", "version": "v3"},
                    "prediction": {"id": f"p-{docs:09d}", "latency_ms": rng.uniform(1, 40)},
                    "inputs": {"age": rng.randint(18, 90), "country": rng.choice(["de", "fr", "us", "in"])},
                    "outputs": {"score": rng.random(), "label": rng.choice(["churn", "stay"])},
                    "tokens": {"review_text": rng.sample(WORDS, 5)},
                },
                "log": {"file": {"path": "/var/log/models/churn.jsonl"}, "offset": docs * 380},
            }
            lines.append(
                orjson.dumps(
                    {"create": {"_index": "logs-inferwatch.churn_classifier-default", "_id": f"{docs:022d}"}}
                )
            )
            lines.append(orjson.dumps(doc))
        compressed = bulkbody.compress(b"\n".join(lines) + b"\n", 1)
    return compressed, docs


def run(directory: Path, payload: bytes, records: int, fsync: bool, ack_interval: float) -> dict[str, float]:
    shutil.rmtree(directory, ignore_errors=True)
    spool = Spool(
        directory,
        max_bytes=records * (len(payload) + 64) * 2,
        segment_bytes=16 * MB,
        fsync=fsync,
        ack_interval=ack_interval,
    )
    t0 = time.perf_counter()
    for _ in range(records):
        spool.append(payload)
    t_append = time.perf_counter() - t0
    os.sync()  # do not bill the reads for write-back left over from the fsync=off run
    t0 = time.perf_counter()
    after = 0
    read_bytes = 0
    while batch := spool.read(after, 8):
        read_bytes += sum(len(r.payload) for r in batch)
        after = batch[-1].seq
    t_read = time.perf_counter() - t0
    t0 = time.perf_counter()
    for seq in range(1, records + 1):
        spool.ack(seq)
    t_ack = time.perf_counter() - t0
    spool.close()
    total = records * len(payload) / MB
    assert read_bytes == records * len(payload)
    return {
        "appends_s": records / t_append,
        "append_mb_s": total / t_append,
        "append_ms": 1000 * t_append / records,
        "read_mb_s": total / t_read,
        "ack_ms": 1000 * t_ack / records,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=300)
    parser.add_argument("--payload-kb", type=int, default=200)
    parser.add_argument(
        "--dir", type=Path, default=None, help="parent directory for the spool (default: temp)"
    )
    args = parser.parse_args()
    payload, docs = bulk_body_gz(args.payload_kb * 1024, random.Random(7))
    parent = Path(tempfile.mkdtemp(prefix="spool-bench-", dir=args.dir))
    try:
        print(
            f"payload: {len(payload) / 1024:.0f} KiB gzip bulk body ({docs} documents, "
            f"{len(payload) / docs:.0f} B/doc compressed); {args.records} records per run; dir {parent}"
        )
        print(
            f"{'fsync':<6} {'ack':>5} {'appends/s':>10} {'MB/s':>8} {'ms/append':>10} {'docs/s':>11} {'read MB/s':>10} {'ms/ack':>8}"
        )
        for fsync, ack_interval in ((True, 0.0), (True, 1.0), (False, 0.0)):
            r = run(parent / f"fsync-{fsync}-{ack_interval}", payload, args.records, fsync, ack_interval)
            print(
                f"{'on' if fsync else 'off':<6} {'each' if ack_interval == 0 else f'{ack_interval:g}s':>5} {r['appends_s']:>10.0f} {r['append_mb_s']:>8.1f} {r['append_ms']:>10.2f} "
                f"{r['appends_s'] * docs:>11.0f} {r['read_mb_s']:>10.0f} {r['ack_ms']:>8.2f}"
            )
    finally:
        shutil.rmtree(parent, ignore_errors=True)


if __name__ == "__main__":
    main()
