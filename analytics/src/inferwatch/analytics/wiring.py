"""The composition root of the analytics worker: from the config, the backends (Elasticsearch when
the config has an ``elasticsearch`` section, else the local store under ``agent.data_dir``) and the
``Evaluator`` wired to them. Commands (``analytics.cli``), the demo and the report build on this;
it holds no command and prints nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from inferwatch.analytics.alerts.controls import ControlStore
from inferwatch.analytics.alerts.sink import AlertSink, LocalAlertSink
from inferwatch.analytics.baseline.store import BaselineStore, LocalBaselineStore
from inferwatch.analytics.jobs import Evaluator, model_features, model_floors
from inferwatch.analytics.sources.base import CountSource
from inferwatch.analytics.state_store import StateStore
from inferwatch.core.clitools import hosts_text
from inferwatch.core.config import Config
from inferwatch.core.layout import DataDir


def shipped_namespaces(cfg: Config) -> tuple[str, ...]:
    """Every data stream namespace the agent of this config ships into: ``agent.namespace`` and
    each ``agent.inputs[].namespace`` (an input's namespace overrides the agent's, and a line may
    name any model, so every model is searched in all of them)."""
    names = [cfg.agent.namespace, *(i.namespace for i in cfg.agent.inputs if i.namespace)]
    return tuple(dict.fromkeys(names))


@dataclass(frozen=True)
class Backends:
    source: CountSource
    sink: AlertSink
    baselines: BaselineStore
    description: str


def store_dir(cfg: Config) -> Path:
    """The agent's local store (embedded mode): ``<agent.data_dir>/store``."""
    return DataDir(cfg.agent.data_dir).store


def store_index(cfg: Config) -> Path:
    """Where the local source keeps the time span of each store segment between processes."""
    return DataDir(cfg.agent.data_dir).analytics_state / "store-index.json"


def backends(cfg: Config) -> Backends:
    """Elasticsearch when the config has an ``elasticsearch`` section, else the local store."""
    if cfg.elasticsearch is not None:
        from inferwatch.analytics.alerts.sink import ElasticsearchAlertSink
        from inferwatch.analytics.baseline.store import ElasticsearchBaselineStore
        from inferwatch.analytics.es import make_client
        from inferwatch.analytics.sources.elasticsearch import ElasticsearchSource

        client = make_client(cfg.elasticsearch)
        return Backends(
            source=ElasticsearchSource(client, shipped_namespaces(cfg)),
            sink=ElasticsearchAlertSink(client),
            baselines=ElasticsearchBaselineStore(client, cfg.baselines_dir),
            description=f"Elasticsearch {hosts_text(cfg.elasticsearch.hosts)}",
        )
    from inferwatch.analytics.sources.local import LocalSource

    return Backends(
        source=LocalSource(store_dir(cfg), shipped_namespaces(cfg), store_index(cfg)),
        sink=LocalAlertSink(DataDir(cfg.agent.data_dir).alerts),
        baselines=LocalBaselineStore(cfg.baselines_dir),
        description=f"local store {store_dir(cfg)}",
    )


def build_evaluator(cfg: Config, chosen: Backends | None = None) -> Evaluator:
    chosen = chosen or backends(cfg)
    features, closed = model_features(cfg)
    return Evaluator(
        source=chosen.source,
        baselines=chosen.baselines,
        sink=chosen.sink,
        states=StateStore(DataDir(cfg.agent.data_dir).analytics_state),
        features=features,
        closed=closed,
        floors=model_floors(cfg),
        controls=ControlStore.in_data_dir(cfg.agent.data_dir),
        cooldown=float(cfg.analytics.cooldown),
        false_alarms_per_week=cfg.analytics.false_alarms_per_week,
        interval=float(cfg.analytics.interval),
        min_window_docs=cfg.analytics.min_window_docs,
    )


__all__ = ["Backends", "backends", "build_evaluator", "shipped_namespaces", "store_dir", "store_index"]
