"""Process facts from /proc for tests that watch the agent's child processes (Linux)."""

from __future__ import annotations

from pathlib import Path


def children(pid: int) -> list[int]:
    """The running children of ``pid`` (every thread's ``/proc/<pid>/task/*/children``)."""
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            found += [int(c) for c in (task / "children").read_text().split()]
        except (OSError, ValueError):
            continue
    return found


def exited(pid: int) -> bool:
    """True once ``pid`` has exited (a zombie counts: it runs no more code)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return True
    return state in ("Z", "X")


def all_exited(pids: list[int]) -> bool:
    return all(exited(p) for p in pids)
