"""Find the log files the inputs name: a glob scan, woken early by filesystem events.

The scan is the source of truth (it also catches what events miss: a full inotify queue, a
network filesystem, a directory created later). Events only make the read loop react promptly:
any event sets ``wake``; a create, move or delete also makes the next scan due at once.
"""

from __future__ import annotations

import fnmatch
import glob
import logging
import os
import stat
import threading
import time
from collections.abc import Callable, Sequence

from watchdog.events import (
    DirCreatedEvent,
    DirMovedEvent,
    FileCreatedEvent,
    FileDeletedEvent,
    FileModifiedEvent,
    FileMovedEvent,
    FileSystemEvent,
    FileSystemEventHandler,
)
from watchdog.observers import Observer
from watchdog.observers.api import BaseObserver

from inferwatch.core.config import InputConfig

log = logging.getLogger(__name__)

_EVENTS = [
    DirCreatedEvent,
    DirMovedEvent,
    FileCreatedEvent,
    FileDeletedEvent,
    FileModifiedEvent,
    FileMovedEvent,
]
_RESCAN = frozenset({"created", "moved", "deleted"})


def watch_root(pattern: str) -> tuple[str, bool]:
    """The directory to watch for a glob and whether to watch it recursively: the part before
    the first component with a wildcard."""
    parts = os.path.normpath(os.path.abspath(pattern)).split(os.sep)
    for i, part in enumerate(parts):
        if glob.has_magic(part):
            root = os.sep.join(parts[:i]) or os.sep
            return root, i < len(parts) - 1
    return os.path.dirname(os.sep.join(parts)) or os.sep, False


def excluded(path: str, patterns: Sequence[str]) -> bool:
    """Whether ``path`` matches an exclude glob: a pattern with a ``/`` against the whole path,
    one without against the file name (``*.gz``)."""
    name = os.path.basename(path)
    return any(fnmatch.fnmatchcase(path if "/" in p else name, p) for p in patterns)


class _Waker(FileSystemEventHandler):
    def __init__(self, wake: threading.Event, rescan: threading.Event) -> None:
        self._wake = wake
        self._rescan = rescan

    def on_any_event(self, event: FileSystemEvent) -> None:
        if event.event_type in _RESCAN:
            self._rescan.set()
        self._wake.set()


class Discovery:
    def __init__(
        self,
        inputs: Sequence[InputConfig],
        scan_interval: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._inputs = tuple(inputs)
        self._interval = scan_interval
        self._clock = clock
        self.wake = threading.Event()  # set by filesystem events; the read loop waits on it
        self._rescan = threading.Event()
        self._last_scan: float | None = None
        self._observer: BaseObserver | None = None
        roots: dict[str, bool] = {}
        for inp in self._inputs:
            for pattern in inp.paths:
                root, recursive = watch_root(pattern)
                roots[root] = roots.get(root, False) or recursive
        self._roots = roots
        self._unwatched: dict[str, bool] = {}
        self._warned: set[str] = set()

    def scan(self) -> list[tuple[int, str]]:
        """(input index, path) of every regular file matching an input's globs and none of its
        excludes; a path matched by two inputs belongs to the first."""
        self._rescan.clear()
        self._last_scan = self._clock()
        if self._unwatched:
            self._watch(dict(self._unwatched))
        found: list[tuple[int, str]] = []
        seen: set[str] = set()
        for index, inp in enumerate(self._inputs):
            for pattern in inp.paths:
                for path in sorted(glob.glob(pattern, recursive=True)):
                    if path in seen or excluded(path, inp.exclude):
                        continue
                    try:
                        if not stat.S_ISREG(os.stat(path).st_mode):
                            continue
                    except OSError:
                        continue  # gone since the glob
                    seen.add(path)
                    found.append((index, path))
        return found

    def due(self, now: float) -> bool:
        """Whether a scan should run now: never ran, ``scan_interval`` passed, or a file was
        created, moved or deleted in a watched directory since the last scan."""
        return self._last_scan is None or self._rescan.is_set() or now - self._last_scan >= self._interval

    def start(self) -> None:
        """Watch the globs' directories; without watches (missing directory, inotify limits)
        the periodic scan still finds everything, only later."""
        if self._observer is not None:
            return
        observer = Observer()
        try:
            observer.start()
        except OSError as e:
            log.warning("file events unavailable, relying on the scan every %.0fs: %s", self._interval, e)
            return
        self._observer = observer
        self._watch(self._roots)

    def _watch(self, roots: dict[str, bool]) -> None:
        if self._observer is None:
            return
        for root, recursive in roots.items():
            try:
                self._observer.schedule(
                    _Waker(self.wake, self._rescan), root, recursive=recursive, event_filter=_EVENTS
                )
                self._unwatched.pop(root, None)
            except OSError as e:
                self._unwatched[root] = recursive
                if root not in self._warned:
                    self._warned.add(root)
                    log.warning(
                        "cannot watch %s, relying on the scan every %.0fs: %s", root, self._interval, e
                    )

    def stop(self, timeout: float = 5.0) -> None:
        observer, self._observer = self._observer, None
        if observer is None:
            return
        observer.stop()
        observer.join(timeout)
