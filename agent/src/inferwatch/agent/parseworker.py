"""A parse worker process: ``python -m inferwatch.agent.parseworker``, started by ``agent.parsepool``.

It normalizes runs of lines for the agent's read thread, with normalizers built from the agent's
own normalizers (pickled as their construction values), and holds nothing between requests but their model caches.

The protocol, on the worker's stdin and stdout: frames of an 8-byte big-endian length and a
payload (``write_frame``, ``read_frame``), each payload a pickle but a request's.

1. The agent sends the tuple of its inputs' normalizers (None for an input the pool does not serve);
   the worker unpickles them (each builds its caches anew) and answers ``READY``.
2. Each request (``request_pieces``) is the 8-byte length of a pickled ``(input_index,
   fingerprint, path, ingested, offsets)``, that pickle, then the lines joined by ``\\n`` (a line
   never holds one; ``offsets`` the bytes of an ``array('q')``). The lines stay out of the pickle
   so that the agent writes them to the pipe from the one joined copy it makes (pickling them,
   then framing the pickle, cost the read thread three more copies of each request). It is
   answered ``(items, rejects, counts, seconds)``: the bulk items in line order, the rejected
   lines as ``(position in the request, reason, detail)``, the normalizer's repair counts since
   the last answer, and the seconds the request took here. A request that raised is answered
   ``(None, <the error>, {}, seconds)``.
3. End of stdin (the agent closed it, or died, even by kill -9): the worker exits 0.

SIGINT and SIGTERM are ignored: a Ctrl-C or a service stop reaches the whole process group, and
the agent, which decides when parsing ends, closes the worker's stdin.
"""

from __future__ import annotations

import copyreg
import io
import os
import pickle
import signal
import sys
import time
from array import array
from collections.abc import Sequence
from types import MappingProxyType
from typing import Any, BinaryIO

from inferwatch.agent.model import FileId, LineBatch
from inferwatch.agent.normalize import Normalizer

READY = b"ready"
HEADER = 8  # bytes of a frame's length
MAX_FRAME = 1 << 30  # a length above this is not the protocol (an answer is a few MB)


def read_only(mapping: dict[Any, Any]) -> MappingProxyType[Any, Any]:
    return MappingProxyType(mapping)


def _reduce_mapping_proxy(proxy: MappingProxyType[Any, Any]) -> tuple[Any, tuple[dict[Any, Any]]]:
    return read_only, (dict(proxy),)


# The config's read-only mappings (ModelConfig.features...) pickle as what they wrap, here only.
_DISPATCH = {**copyreg.dispatch_table, MappingProxyType: _reduce_mapping_proxy}


def dumps(value: object) -> bytes:
    """``pickle.dumps`` that also takes the config's ``MappingProxyType`` values."""
    buffer = io.BytesIO()
    pickler = pickle.Pickler(buffer, pickle.HIGHEST_PROTOCOL)
    pickler.dispatch_table = _DISPATCH
    pickler.dump(value)
    return buffer.getvalue()


def frame(payload: bytes) -> bytes:
    return len(payload).to_bytes(HEADER, "big") + payload


def request_pieces(
    index: int, fingerprint: str, path: str, ingested: str, offsets: bytes, joined: bytes
) -> list[bytes]:
    """A request frame (protocol, 2.) as pieces to write in turn, ``joined`` itself the last: the
    frame is their concatenation, which nothing needs to make."""
    meta = pickle.dumps((index, fingerprint, path, ingested, offsets), pickle.HIGHEST_PROTOCOL)
    size = HEADER + len(meta) + len(joined)
    return [size.to_bytes(HEADER, "big") + len(meta).to_bytes(HEADER, "big") + meta, joined]


def parse_request(payload: bytes) -> tuple[int, str, str, str, bytes, bytes]:
    """``(input_index, fingerprint, path, ingested, offsets, joined lines)`` of a request's
    payload."""
    end = HEADER + int.from_bytes(payload[:HEADER], "big")
    index, fingerprint, path, ingested, offsets = pickle.loads(memoryview(payload)[HEADER:end])
    return index, fingerprint, path, ingested, offsets, payload[end:]


def write_frame(stream: BinaryIO, payload: bytes) -> None:
    stream.write(len(payload).to_bytes(HEADER, "big"))
    stream.write(payload)  # not joined to its header first: one copy less of each answer
    stream.flush()


def read_frame(stream: BinaryIO) -> bytes | None:
    """The next frame's payload; None at a clean end of the stream."""
    header = stream.read(HEADER)
    if not header:
        return None
    if len(header) < HEADER:
        raise EOFError("the stream ended inside a frame header")
    size = int.from_bytes(header, "big")
    payload = stream.read(size)
    if len(payload) < size:
        raise EOFError(f"the stream ended inside a frame ({len(payload)} of {size} bytes)")
    return payload


def handle(normalizers: Sequence[Normalizer | None], request: bytes) -> bytes:
    """One request frame -> its answer frame's payload (the protocol above)."""
    started = time.perf_counter()
    index, fingerprint, path, ingested, offsets_bytes, joined = parse_request(request)
    normalizer = normalizers[index]
    try:
        if normalizer is None:
            raise LookupError(f"input {index} has no normalizer in this worker")
        offsets = array("q")
        offsets.frombytes(offsets_bytes)
        batch = LineBatch(FileId(fingerprint), path, index, offsets.tolist(), joined.split(b"\n"), 0)
        items, rejected = normalizer.bulk_items(batch, ingested)
    except Exception as exc:  # answered, not raised: the agent parses this share itself
        return dumps((None, f"{type(exc).__name__}: {exc}", {}, time.perf_counter() - started))
    position = {offset: i for i, offset in enumerate(batch.offsets)} if rejected else {}
    rejects = [(position[r.offset], r.error.reason, r.error.detail) for r in rejected]
    counts = dict(normalizer.counts)
    normalizer.counts.clear()
    return dumps((items, rejects, counts, time.perf_counter() - started))


def serve(stdin: BinaryIO, stdout: BinaryIO) -> int:
    first = read_frame(stdin)
    if first is None:
        return 0
    normalizers: tuple[Normalizer | None, ...] = pickle.loads(first)
    write_frame(stdout, READY)
    while (request := read_frame(stdin)) is not None:
        write_frame(stdout, handle(normalizers, request))
    return 0


def main() -> int:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    stdin = os.fdopen(sys.stdin.fileno(), "rb", buffering=1024 * 1024, closefd=False)
    stdout = os.fdopen(sys.stdout.fileno(), "wb", buffering=1024 * 1024, closefd=False)
    try:
        return serve(stdin, stdout)
    except (BrokenPipeError, EOFError):  # the agent went away mid-frame
        return 0


if __name__ == "__main__":
    raise SystemExit(main())
