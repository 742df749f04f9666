from __future__ import annotations

import bz2
import gzip
import lzma
from pathlib import Path

import pytest

from inferwatch.agent.files.compressed import UNDECIDED, compression_of

from .helpers import drain, lines, make_tailer

LINES = b'{"prediction_id": "p1"}\n{"prediction_id": "p2"}\n'


@pytest.mark.parametrize(
    ("data", "kind"),
    [
        (gzip.compress(LINES), "gzip"),
        (bz2.compress(LINES), "bzip2"),
        (lzma.compress(LINES), "xz"),
        (b"\x28\xb5\x2f\xfd\x04\x00", "zstd"),
        (b"\x04\x22\x4d\x18\x64\x40", "lz4"),
        (LINES, None),
        (b"BZ is a model\n", None),
        (b"BZh", UNDECIDED),
        (b"\x1f", UNDECIDED),
        (b"\xfd7z", UNDECIDED),
        (b"", None),
    ],
)
def test_compression_is_told_by_the_magic_bytes(data: bytes, kind: str | None) -> None:
    assert compression_of(data[:6]) == kind


def test_compressed_files_are_skipped_counted_once_and_never_read_as_lines(tmp_path: Path) -> None:
    (tmp_path / "a.jsonl.1.gz").write_bytes(gzip.compress(LINES * 50))
    (tmp_path / "a.jsonl.2.xz").write_bytes(lzma.compress(LINES))
    (tmp_path / "a.jsonl").write_bytes(LINES)
    t = make_tailer()
    for p in sorted(tmp_path.iterdir()):
        t.add_path(str(p), 0)
    assert lines(drain(t)) == [b'{"prediction_id": "p1"}', b'{"prediction_id": "p2"}']
    assert t.counts["compressed"] == 2
    for p in sorted(tmp_path.iterdir()):  # the next scans: not opened again, not counted again
        t.add_path(str(p), 0)
    assert drain(t) == []
    assert t.counts["compressed"] == 2
    assert [f.path for f in t.files()] == [str(tmp_path / "a.jsonl")]


def test_a_compressor_that_has_written_only_part_of_the_magic_is_waited_for(tmp_path: Path) -> None:
    gz = tmp_path / "a.jsonl.1.gz"
    data = gzip.compress(LINES)
    gz.write_bytes(data[:1])
    t = make_tailer()
    t.add_path(str(gz), 0)
    assert drain(t) == []
    with gz.open("ab") as f:
        f.write(data[1:])
    assert drain(t) == []
    assert t.counts["compressed"] == 1


def test_a_compressed_rotation_of_a_log_not_read_to_its_end_is_reported(tmp_path: Path) -> None:
    from inferwatch.agent.files.identity import fingerprint_of
    from inferwatch.agent.model import Checkpoint

    first = b'{"prediction_id": "p1"}\n'
    fid = fingerprint_of(first)
    assert fid is not None
    (tmp_path / "a.jsonl.1.gz").write_bytes(gzip.compress(LINES))  # read up to 10 before a restart
    (tmp_path / "b.jsonl.1.gz").write_bytes(gzip.compress(b'{"other": 1}\n'))  # never read: history
    t = make_tailer(lookup={fid: Checkpoint(10, str(tmp_path / "a.jsonl"), 1, 2, 0.0)}.get)
    t.add_path(str(tmp_path / "a.jsonl.1.gz"), 0)
    t.add_path(str(tmp_path / "b.jsonl.1.gz"), 0)
    assert drain(t) == []
    assert (t.counts["compressed"], t.counts["compressed_unfinished"]) == (2, 1)
    finished = make_tailer(lookup={fid: Checkpoint(len(LINES), str(tmp_path / "a.jsonl"), 1, 2, 0.0)}.get)
    finished.add_path(str(tmp_path / "a.jsonl.1.gz"), 0)  # read to its end before a restart
    assert (finished.counts["compressed"], finished.counts["compressed_unfinished"]) == (1, 0)


def test_a_compressed_rotation_of_a_log_being_read_or_finished_is_not_reported(tmp_path: Path) -> None:
    log = tmp_path / "a.jsonl"
    log.write_bytes(LINES)
    t = make_tailer()
    t.add_path(str(log), 0)
    assert len(lines(drain(t))) == 2
    (tmp_path / "a.jsonl.1.gz").write_bytes(gzip.compress(LINES))  # the log, still open
    t.add_path(str(tmp_path / "a.jsonl.1.gz"), 0)
    assert (t.counts["compressed"], t.counts["compressed_unfinished"]) == (1, 0)
