from __future__ import annotations

from pathlib import Path

import pytest

from agent.config import ConfigError, load_config, model_dataset, parse_config
from agent.configschema import ByteSize, Duration, Secret

EXAMPLE = """
agent:
  data_dir: ./data
  inputs:
    - paths: ["/var/log/models/*.jsonl"]
      model: churn-classifier
elasticsearch:
  hosts: ["https://127.0.0.1:9200"]
  api_key: ${ES_API_KEY}
models:
  churn-classifier:
    features: {country: categorical, age: numeric, review_text: text}
"""


def problems(text: str, env: dict[str, str] | None = None) -> list[tuple[str, str]]:
    with pytest.raises(ConfigError) as info:
        parse_config(text, env or {})
    return info.value.problems


def test_issue_example_loads_with_secret_from_environment() -> None:
    cfg = parse_config(EXAMPLE.replace("churn-classifier", "churn_classifier"), {"ES_API_KEY": "k3y"})
    assert cfg.elasticsearch is not None
    assert cfg.elasticsearch.api_key == Secret("k3y")
    assert cfg.elasticsearch.verify_certs is True
    assert "k3y" not in repr(cfg)
    assert cfg.models["churn_classifier"].features["review_text"] == "text"
    assert cfg.text_features("churn_classifier") == frozenset({"review_text"})


def test_issue_example_with_a_dashed_model_name_loads() -> None:
    cfg = parse_config(EXAMPLE, {"ES_API_KEY": "x"})
    assert cfg.agent.inputs[0].model == "churn-classifier"
    assert model_dataset("churn-classifier") == "churn_classifier"
    assert cfg.text_features("churn-classifier") == frozenset({"review_text"})
    assert cfg.text_features("churn_classifier") == frozenset({"review_text"})  # as the dataset names it


def test_model_name_without_a_usable_dataset_part_is_refused_with_its_path() -> None:
    found = problems(EXAMPLE.replace("model: churn-classifier", "model: _churn"), {"ES_API_KEY": "x"})
    assert [path for path, _ in found] == ["agent.inputs[0].model"]


def test_two_models_writing_to_one_data_stream_are_refused() -> None:
    text = EXAMPLE + "  Churn_Classifier:\n    features: {age: numeric}\n"
    assert model_dataset("Churn_Classifier") == model_dataset("churn-classifier")
    found = problems(text, {"ES_API_KEY": "x"})
    assert [path for path, _ in found] == ["models.Churn_Classifier"]


def test_unset_environment_variable_is_named() -> None:
    found = problems(EXAMPLE.replace("churn-classifier", "churn"))
    assert found == [("elasticsearch.api_key", "environment variable ES_API_KEY is not set")]


def test_default_value_syntax() -> None:
    cfg = parse_config("agent:\n  namespace: ${NS:-prod}\n", {})
    assert cfg.agent.namespace == "prod"


def test_unknown_key_and_wrong_type_reported_together() -> None:
    found = dict(problems("agent:\n  data_dri: x\n  max_line_bytes: lots\n"))
    assert "unknown key" in found["agent.data_dri"]
    assert "size" in found["agent.max_line_bytes"]


def test_wrong_literal_lists_choices() -> None:
    found = dict(problems("agent:\n  inputs:\n    - paths: [a.jsonl]\n      start_at: middle\n"))
    assert "'beginning'" in found["agent.inputs[0].start_at"]


def test_units() -> None:
    assert Duration.parse("5m") == 300.0
    assert Duration.parse("250ms") == 0.25
    assert ByteSize.parse("16MiB") == 16 * 1024 * 1024
    assert ByteSize.parse(1024) == 1024
    with pytest.raises(ValueError):
        Duration.parse("soon")


def test_relative_paths_resolve_from_config_folder(tmp_path: Path) -> None:
    cfg_file = tmp_path / "conf" / "inferwatch.yml"
    cfg_file.parent.mkdir()
    cfg_file.write_text("agent:\n  data_dir: state\n  inputs:\n    - paths: [logs/*.jsonl]\n")
    cfg = load_config(cfg_file, env={})
    assert cfg.agent.data_dir == (tmp_path / "conf" / "state").resolve()
    assert cfg.agent.inputs[0].paths == (str(tmp_path / "conf" / "logs/*.jsonl"),)


def test_username_password_and_api_key_are_exclusive() -> None:
    found = dict(
        problems("elasticsearch:\n  hosts: [http://x:9200]\n  api_key: a\n  username: u\n  password: p\n")
    )
    assert "not both" in found["elasticsearch.api_key"]


def test_not_a_mapping() -> None:
    assert problems("- a\n- b\n")[0][0] == ""


def test_hash_needs_key_in_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("INFERWATCH_HASH_KEY", raising=False)
    found = dict(problems("agent:\n  redact:\n    hash: [inputs.email]\n"))
    assert "INFERWATCH_HASH_KEY" in found["agent.redact.hash"]


def test_example_config_in_repository_is_valid() -> None:
    root = Path(__file__).resolve().parents[3]
    cfg = load_config(root / "inferwatch.example.yml", env={"ES_API_KEY": "k"})
    assert cfg.models["churn_classifier"].categorical_closed == ("country",)
    assert cfg.agent.spool.max_bytes == 1024**3
