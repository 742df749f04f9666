"""What an ``OSError`` means for a person: one description, with the fix when the disk is full."""

from __future__ import annotations

import errno

_DISK_FULL = frozenset({errno.ENOSPC, errno.EDQUOT})


def is_disk_full(exc: BaseException | None) -> bool:
    """ENOSPC or EDQUOT: no room left on the filesystem (or in the user's quota)."""
    return isinstance(exc, OSError) and exc.errno in _DISK_FULL


def name_file(exc: OSError, path: object) -> None:
    """Give ``exc`` ``path`` as its file name when it has none (``os.write`` and ``os.fsync`` on a
    descriptor raise without one), so that ``describe`` says which file; the caller re-raises."""
    if exc.filename is None:
        exc.filename = str(path)


def describe(exc: BaseException) -> str:
    """One line: for a full disk, where, and what to do; otherwise the error's type and text."""
    if is_disk_full(exc):
        assert isinstance(exc, OSError)
        where = f" writing {exc.filename}" if exc.filename else ""
        return (
            f"disk full{where} ({exc.strerror or exc}): free space on that filesystem or move "
            "agent.data_dir to a larger one; nothing is lost (unread lines stay in the log files, "
            "unsent ones in the spool) and the agent resumes by itself when there is room"
        )
    return f"{type(exc).__name__}: {exc}"
