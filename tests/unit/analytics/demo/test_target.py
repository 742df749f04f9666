from __future__ import annotations

from pathlib import Path
from typing import Any

from inferwatch.analytics.demo.runner import write_config
from inferwatch.analytics.demo.target import EsCounter, EsTarget
from inferwatch.core.config import parse_config


def test_no_url_means_the_local_store() -> None:
    assert EsTarget.from_env({}) is None
    assert EsTarget.from_env({"INFERWATCH_ES_URL": "  "}) is None


def test_an_api_key_target_writes_no_secret_into_the_config(tmp_path: Path) -> None:
    env = {
        "INFERWATCH_ES_URL": "https://127.0.0.1:9200",
        "INFERWATCH_ES_API_KEY": "c2VjcmV0",
        "INFERWATCH_KIBANA_URL": "http://127.0.0.1:5601/",
    }
    target = EsTarget.from_env(env)
    assert target is not None and target.auth == "api_key"
    path = write_config(tmp_path, 300, target)
    text = path.read_text(encoding="utf-8")
    assert "c2VjcmV0" not in text and "${INFERWATCH_ES_API_KEY}" in text
    cfg = parse_config(text, env, source=path)
    assert cfg.elasticsearch is not None and cfg.elasticsearch.hosts == ("https://127.0.0.1:9200",)
    key = cfg.elasticsearch.resolved_api_key()
    assert key is not None and key.reveal() == "c2VjcmV0"
    assert cfg.kibana is not None and cfg.kibana.url == "http://127.0.0.1:5601/"
    assert target.links() == ["http://127.0.0.1:5601/app/dashboards", "http://127.0.0.1:5601/app/discover"]


def test_a_password_target_defaults_the_username_to_elastic(tmp_path: Path) -> None:
    env = {"INFERWATCH_ES_URL": "http://127.0.0.1:9200", "INFERWATCH_ES_PASSWORD": "pw"}
    target = EsTarget.from_env(env)
    assert target is not None
    cfg = parse_config(write_config(tmp_path, 300, target).read_text(encoding="utf-8"), env)
    assert cfg.elasticsearch is not None and cfg.elasticsearch.username == "elastic"
    assert cfg.kibana is None and target.links() == []


class FakeClient:
    def __init__(self, counts: list[int | Exception]) -> None:
        self.counts = counts
        self.indices = self
        self.refreshed: list[str] = []

    def refresh(self, index: str, **_: Any) -> None:
        self.refreshed.append(index)

    def count(self, index: str, **_: Any) -> dict[str, int]:
        value = self.counts.pop(0)
        if isinstance(value, Exception):
            raise value
        return {"count": value}


def test_es_counter_refreshes_counts_and_keeps_the_last_count_on_failure() -> None:
    client = FakeClient([120, ConnectionError("down"), 400])
    counter = EsCounter(client, "logs-inferwatch.cars_mpg-default")
    assert [counter.count(), counter.count(), counter.count()] == [120, 120, 400]
    assert client.refreshed == ["logs-inferwatch.cars_mpg-default"] * 3
