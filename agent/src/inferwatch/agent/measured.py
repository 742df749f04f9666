"""An output that times its bulk requests: ``bulk_request_duration_seconds``,
``bulk_request_documents`` and ``bulk_request_bytes`` (histograms), for every request the ship
loop sends, answered or failed. It wraps any ``Output``, so the outputs and the ship loop stay as
they are."""

from __future__ import annotations

import time
from collections.abc import Callable

from inferwatch.agent.metrics import Metrics
from inferwatch.agent.model import ItemResult
from inferwatch.agent.outputs import Output


class MeasuredOutput:
    def __init__(
        self, output: Output, metrics: Metrics, clock: Callable[[], float] = time.perf_counter
    ) -> None:
        self._output = output
        self._metrics = metrics
        self._clock = clock

    def send(self, body_gz: bytes, items: int) -> list[ItemResult]:
        self._metrics.observe("bulk_request_documents", items)
        self._metrics.observe("bulk_request_bytes", len(body_gz))
        started = self._clock()
        try:
            return self._output.send(body_gz, items)
        finally:
            self._metrics.observe("bulk_request_duration_seconds", self._clock() - started)

    def check(self) -> str:
        return self._output.check()

    def close(self) -> None:
        self._output.close()
