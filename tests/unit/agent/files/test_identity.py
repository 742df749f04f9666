from __future__ import annotations

import hashlib
import io
import os
from pathlib import Path

from inferwatch.agent.files.identity import fingerprint, fingerprint_of
from inferwatch.agent.model import FileId


def blake(data: bytes) -> FileId:
    return FileId(hashlib.blake2b(data, digest_size=16).hexdigest())


def test_first_line_with_its_newline_is_the_identity() -> None:
    assert fingerprint_of(b'{"a":1}\n{"a":2}\n') == blake(b'{"a":1}\n')


def test_same_first_line_same_identity_whatever_follows() -> None:
    assert fingerprint_of(b"x\ny\n") == fingerprint_of(b"x\nz")


def test_leading_empty_lines_do_not_end_the_first_line() -> None:
    assert fingerprint_of(b"\n\r\nabc\ndef\n") == blake(b"\n\r\nabc\n")
    assert fingerprint_of(b"\n\n") is None


def test_no_identity_before_the_first_line_is_complete() -> None:
    assert fingerprint_of(b"") is None
    assert fingerprint_of(b'{"a":') is None


def test_a_first_line_longer_than_max_bytes_uses_the_first_max_bytes() -> None:
    assert fingerprint_of(b"abcdefgh", max_bytes=4) == blake(b"abcd")
    assert fingerprint_of(b"abcd\n", max_bytes=4) == blake(b"abcd")
    assert fingerprint_of(b"abc\n", max_bytes=4) == blake(b"abc\n")


def test_final_hashes_an_unfinished_first_line() -> None:
    assert fingerprint_of(b"abc", final=True) == blake(b"abc")
    assert fingerprint_of(b"", final=True) is None


def test_fingerprint_reads_an_fd_or_file_object_without_moving_it(tmp_path: Path) -> None:
    path = tmp_path / "a.jsonl"
    path.write_bytes(b"first\nsecond\n")
    with open(path, "rb") as f:
        f.seek(6)
        assert fingerprint(f) == blake(b"first\n")
        assert f.read() == b"second\n"
    fd = os.open(path, os.O_RDONLY)
    try:
        assert fingerprint(fd) == blake(b"first\n")
        assert os.lseek(fd, 0, os.SEEK_CUR) == 0
    finally:
        os.close(fd)


def test_fingerprint_of_an_in_memory_file_is_not_supported() -> None:
    # A file object without a descriptor can't be read with pread; callers pass real files.
    try:
        fingerprint(io.BytesIO(b"x\n"))  # type: ignore[arg-type]
    except io.UnsupportedOperation:
        return
    raise AssertionError("expected UnsupportedOperation")
