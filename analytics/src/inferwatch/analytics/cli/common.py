"""What the analytics commands share: argument parsing (times, durations, configured models) and
turning a failed Elasticsearch request into one line with the fix."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import click

from inferwatch.core.clitools import EXIT_CONFIG, fail, hosts_text
from inferwatch.core.config import Config, ModelConfig
from inferwatch.core.configschema import Duration

EXIT_USAGE = EXIT_CONFIG


@contextmanager
def elasticsearch_errors(cfg: Config) -> Iterator[None]:
    """Turn a failed request to Elasticsearch into one line with the fix, exit 1 (no traceback)."""
    try:
        yield
    except Exception as exc:
        if cfg.elasticsearch is None:
            raise
        from elastic_transport import TransportError
        from elasticsearch import ApiError

        from inferwatch.analytics.es import ElasticsearchError

        if not isinstance(exc, ElasticsearchError | ApiError | TransportError):
            raise
        hosts = hosts_text(cfg.elasticsearch.hosts)
        fail(
            f"Elasticsearch at {hosts} failed: {exc}",
            "is Elasticsearch running and reachable there, and do the credentials in the "
            "elasticsearch section allow it? `inferwatch agent check` tests the connection; "
            "without an elasticsearch section the local store under agent.data_dir is used",
        )


def parse_at(text: str | None, param_hint: str = "--at") -> datetime:
    if text is None or text == "now":
        return datetime.now(UTC)
    try:
        at = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise click.BadParameter(
            f"expected an ISO-8601 time such as 2026-11-22T10:00:00Z (UTC unless an offset is "
            f"given) or 'now', got {text!r}",
            param_hint=param_hint,
        ) from None
    return at if at.tzinfo is not None else at.replace(tzinfo=UTC)


def parse_duration(text: str | None, default: float, param_hint: str = "--window") -> float:
    if text is None:
        return default
    try:
        value = float(Duration.parse(text))
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint=param_hint) from None
    if value <= 0:
        raise click.BadParameter(f"must be positive, got {text!r}", param_hint=param_hint)
    return value


def configured_model(cfg: Config, model: str) -> tuple[str, ModelConfig]:
    """The ``models`` entry of ``model`` (named as in the config or as its data stream part), or
    exit 2 listing the known models: a baseline or evaluation of an unconfigured model would
    never be used by the worker, which evaluates the configured models only."""
    for name, m in cfg.models.items():
        if name == model:
            return name, m
    found = cfg.model_config(model)
    if found is not None:
        return next(name for name, m in cfg.models.items() if m is found), found
    known = ", ".join(cfg.models) or "none: the config has no models section"
    fail(
        f"model {model!r} is not in the config's models (known: {known})",
        f"give a model named under models:, or add it there with its features, e.g.\n"
        f"  models:\n    {model}:\n      features: {{country: categorical, age: numeric}}",
        code=EXIT_USAGE,
    )


def no_models_exit(config_path: Path) -> None:
    fail(
        f"{config_path}: the config has no models section: there is nothing to evaluate",
        "name each model and its features under models:, e.g.\n"
        "  models:\n    churn_classifier:\n      features: {country: categorical, age: numeric}",
        code=EXIT_USAGE,
    )
