"""Microseconds per document and compression ratio of the gzip step (``bulkbody.compress``) on
real bulk bodies, next to the other gzip encoders this machine has (zlib, python-isal, zlib-ng).

The bodies are what the pipeline spools: ``bench/agent_throughput.py``'s prediction lines,
normalized by the agent's ``Normalizer`` with that bench's model (every feature kind declared, the
text feature tokenized), joined as bulk items in batches of 2000 documents (the default
``batch.max_docs``, ~1.4 MB raw). Each encoder compresses every batch; CPU time of this thread,
best of ``--repeat`` runs. Every output is checked to be one gzip member that ``zlib`` (what the
fake bulk server and ``bulkbody.decode`` use) decompresses to the body.

Then the way back: ``bulkbody.decode_some`` taking ``--refused`` of each body's items out of its
payload (what the ship loop does for the items an answer refused), by the native ``gzip_lines``
(one libdeflate inflate, no GIL) and by the Python streaming inflate it falls back to.

    .venv/bin/python bench/compress_speed.py [--lines 40000] [--repeat 3] [--refused 0.02]
"""

from __future__ import annotations

import argparse
import functools
import random
import sys
import time
import zlib
from collections.abc import Callable
from pathlib import Path
from types import MappingProxyType

sys.path.insert(0, str(Path(__file__).resolve().parent))

import agent_throughput as at

from inferwatch.agent import bulkbody
from inferwatch.agent.model import FileId, LineBatch
from inferwatch.agent.normalize import Normalizer
from inferwatch.core.config import InputConfig, ModelConfig

MODEL = ModelConfig(  # agent_throughput.agent_config's model
    features=MappingProxyType(
        {"age": "numeric", "country": "categorical", "plan": "categorical", "review_text": "text"}
    ),
    outputs=MappingProxyType({"score": "numeric", "label": "categorical"}),
)
Compress = Callable[[bytes], bytes]


def bodies(lines: int, batch: int) -> list[bytes]:
    """The raw bulk bodies of ``lines`` prediction lines, ``batch`` documents each."""
    rng = random.Random(1)
    data = [at.prediction_line(rng, seq).rstrip(b"\n") for seq in range(lines)]
    normalizer = Normalizer(
        InputConfig(paths=("/var/log/models/*.jsonl",)),
        MappingProxyType({at.MODEL: MODEL}),
        "default",
        host="bench",
        agent_version="bench",
    )
    out = []
    offset = 0
    for start in range(0, lines, batch):
        chunk = data[start : start + batch]
        offsets = []
        for line in chunk:
            offsets.append(offset)
            offset += len(line) + 1
        work = LineBatch(
            FileId("ab" * 16), "/var/log/models/predictions-000.jsonl", 0, offsets, chunk, offset
        )
        events, rejects = normalizer.normalize_batch(work, "2026-11-22T11:00:00.000Z")
        assert not rejects
        out.append(bulkbody.raw_body((e.index, e.doc_id, e.body) for e in events))
    return out


def encoders() -> dict[str, Compress]:
    found: dict[str, Compress] = {"bulkbody.compress(1)": lambda b: bulkbody.compress(b, 1)}
    for level in (1, 2, 3, 6):
        found[f"zlib {level}"] = functools.partial(zlib.compress, level=level, wbits=31)
    try:
        from isal import isal_zlib
    except ImportError:
        print("isal not installed: pip install isal")
    else:
        for level in (0, 1, 2):
            found[f"isal {level}"] = functools.partial(isal_zlib.compress, level=level, wbits=31)
    try:
        from zlib_ng import zlib_ng
    except ImportError:
        print("zlib-ng not installed: pip install zlib-ng")
    else:
        for level in (1, 2, 3, 6):
            found[f"zlib-ng {level}"] = functools.partial(zlib_ng.compress, level=level, wbits=31)
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=40_000)
    parser.add_argument("--batch", type=int, default=2000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--refused", type=float, default=0.02, help="share of items decode_some takes out")
    args = parser.parse_args()
    work = bodies(args.lines, args.batch)
    raw = sum(map(len, work))
    print(f"{len(work)} bodies of {args.batch} documents, {raw / len(work) / 1e6:.2f} MB raw each")
    print(f"{'encoder':22s} {'us/doc':>7s} {'MB/s':>7s} {'ratio':>6s} {'B/doc':>6s}")
    for name, compress in encoders().items():
        best = float("inf")
        size = 0
        for _ in range(args.repeat):
            start = time.thread_time()
            out = [compress(b) for b in work]
            best = min(best, time.thread_time() - start)
            size = sum(map(len, out))
        for body, gz in zip(work, out, strict=True):
            d = zlib.decompressobj(31)
            assert d.decompress(gz) == body and d.eof and not d.unused_data, name
        print(
            f"{name:22s} {best / args.lines * 1e6:7.2f} {raw / best / 1e6:7.0f} {raw / size:6.2f} "
            f"{size / args.lines:6.0f}"
        )
    refused(work, args.batch, args.refused, args.repeat)


def refused(work: list[bytes], batch: int, share: float, repeat: int) -> None:
    """``decode_some`` of ``share`` of each body's items, native and Python: ms per body."""
    payloads = [bulkbody.compress(b) for b in work]
    rng = random.Random(7)
    picks = [sorted(rng.sample(range(batch), max(1, int(batch * share)))) for _ in payloads]
    native = bulkbody._gzip_lines
    print(f"\ndecode_some, {share:.0%} of each body's items   ms/body")
    for name, lines in (("native gzip_lines", native), ("Python streaming inflate", None)):
        if name.startswith("native") and native is None:
            print("native gzip_lines not installed: pip install ./agent/native")
            continue
        bulkbody._gzip_lines = lines
        best, got = float("inf"), []
        for _ in range(repeat):
            start = time.thread_time()
            got = [bulkbody.decode_some(p, w) for p, w in zip(payloads, picks, strict=True)]
            best = min(best, time.thread_time() - start)
        assert [sorted(g) for g in got] == picks, name
        print(f"{name:32s} {best / len(payloads) * 1e3:7.3f}")
    bulkbody._gzip_lines = native


if __name__ == "__main__":
    main()
