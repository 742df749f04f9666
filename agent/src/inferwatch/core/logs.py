"""How an inferwatch process writes its own logs to stderr: ``text`` (one line a person reads) or
``json`` (one ECS document per line, from Elastic's ``ecs-logging``: ``@timestamp``,
``log.level``, ``log.logger``, ``message``, ``ecs.version``, ``process.pid``, ``service.*`` and,
for an exception, ``error.type``, ``error.message``, ``error.stack_trace``), so that the agent's
and the worker's logs can be shipped and searched like any other. In json, an exception that
escapes a thread is logged as one such document too. The messages a command prints before it
exits (a config problem and its ``fix:``) stay plain text on stderr.

Chosen with ``inferwatch --log-format json`` or ``$INFERWATCH_LOG_FORMAT``.
"""

from __future__ import annotations

import logging
import sys
import threading
from typing import Literal, TextIO

LogFormat = Literal["text", "json"]
LOG_FORMATS: tuple[LogFormat, ...] = ("text", "json")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def formatter(log_format: LogFormat) -> logging.Formatter:
    if log_format == "json":
        import ecs_logging

        from inferwatch.core import __version__

        return ecs_logging.StdlibFormatter(
            extra={"service": {"name": "inferwatch", "version": __version__}},
            exclude_fields=["log.original"],  # the message again, before formatting
        )
    return logging.Formatter(TEXT_FORMAT)


def configure(level: str, log_format: LogFormat = "text", stream: TextIO | None = None) -> None:
    """The root logger writes ``level`` and above to ``stream`` (stderr) in ``log_format``. Like
    ``logging.basicConfig``, it does nothing when the root logger already has a handler (a test
    runner's, or an embedding application's)."""
    root = logging.getLogger()
    if root.handlers:
        return
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(formatter(log_format))
    root.addHandler(handler)
    root.setLevel(getattr(logging, level.upper()))
    if log_format == "json":
        # An exception that escapes a thread is printed by Python itself, as a plain traceback
        # over several lines; in json, it is one document with error.* like every other line.
        threading.excepthook = _log_thread_exception


def _log_thread_exception(args: threading.ExceptHookArgs) -> None:
    if args.exc_type is SystemExit:
        return
    name = args.thread.name if args.thread is not None else "?"
    exc_info = (args.exc_type, args.exc_value or args.exc_type(), args.exc_traceback)
    logging.getLogger("inferwatch").critical("uncaught exception in thread %s", name, exc_info=exc_info)
