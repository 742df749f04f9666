"""State files that are either the old version or the new one, never half of each.

``atomic_write_bytes`` writes ``<path>.tmp``, fsyncs it, renames it over ``<path>`` and fsyncs the
directory so the rename itself survives a power cut. A crash before the rename leaves a
``<path>.tmp`` that was never committed: ``read_state_bytes`` removes it and returns the main
file's bytes (or None when there is none), so a reader never sees a half-written state.

Only the owner of a state file calls ``read_state_bytes`` (at load time): it deletes the temp file
and must not race a writer of the same path.
"""

from __future__ import annotations

import contextlib
import logging
import os
from pathlib import Path

log = logging.getLogger(__name__)


def tmp_path(path: Path) -> Path:
    """Where ``atomic_write_bytes`` stages the new content of ``path``."""
    return path.with_name(path.name + ".tmp")


def fsync_dir(directory: Path) -> None:
    """Make creations, renames and deletions in ``directory`` durable (a no-op where directories
    cannot be opened, e.g. on Windows)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:  # some filesystems refuse fsync on a directory; nothing more can be done
        pass
    finally:
        os.close(fd)


def atomic_write_bytes(path: Path, data: bytes, fsync: bool = True) -> None:
    """Replace ``path`` with ``data`` atomically: temp file, fsync, rename, fsync the directory."""
    tmp = tmp_path(path)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        view = memoryview(data)
        while view:
            written = os.write(fd, view)
            view = view[written:]
        if fsync:
            os.fsync(fd)
    except BaseException:
        os.close(fd)
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    os.close(fd)
    try:
        os.replace(tmp, path)
    except OSError:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    if fsync:
        fsync_dir(path.parent)


def read_state_bytes(path: Path) -> bytes | None:
    """The committed bytes of ``path``, or None when it was never written.

    A leftover ``<path>.tmp`` is from a write that crashed before its rename: it was never
    committed, so it is removed whether or not the main file exists.
    """
    tmp = tmp_path(path)
    try:
        tmp.unlink()
        log.info("removed uncommitted %s (a write interrupted before its rename)", tmp)
    except FileNotFoundError:
        pass
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return None
