from __future__ import annotations

import dataclasses
import re
import typing
from pathlib import Path

import pytest

from inferwatch.core.config import (
    Config,
    ConfigError,
    ElasticsearchConfig,
    load_config,
    model_dataset,
    parse_config,
    url_without_credentials,
)
from inferwatch.core.configschema import ByteSize, Duration, Secret

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


def test_unset_environment_variable_is_named_with_the_fix() -> None:
    found = problems(EXAMPLE.replace("churn-classifier", "churn"))
    assert found == [
        (
            "elasticsearch.api_key",
            "environment variable ES_API_KEY is not set; export it, or give a default with "
            "${ES_API_KEY:-value}",
        )
    ]


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


def test_example_config_names_every_key_of_the_schema() -> None:
    """The example is the reference: each key of the schema appears in it (set or commented)."""
    text = (Path(__file__).resolve().parents[3] / "inferwatch.example.yml").read_text()
    seen: set[type] = set()
    missing: list[str] = []

    def walk(cls: type) -> None:
        if cls in seen:
            return
        seen.add(cls)
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            if f.name == "source":
                continue
            if not re.search(rf"\b{f.name}:", text):
                missing.append(f"{cls.__name__}.{f.name}")
            for tp in (hints[f.name], *typing.get_args(hints[f.name])):
                for inner in (tp, *typing.get_args(tp)):
                    if dataclasses.is_dataclass(inner) and isinstance(inner, type):
                        walk(inner)

    walk(Config)
    assert missing == []


def test_a_yaml_syntax_error_is_one_line_with_line_and_column() -> None:
    (path, reason), *rest = problems("agent:\n  inputs: [\n")
    assert path == "" and rest == []
    assert reason.startswith("not valid YAML at line 3, column 1: ")
    assert "\n" not in reason and "<unicode string>" not in reason


def test_an_unknown_key_suggests_the_close_one() -> None:
    found = dict(problems("agent:\n  inputz: []\n"))
    assert found["agent.inputz"].startswith("unknown key; did you mean 'inputs'? (known keys: ")


def test_a_problem_of_the_whole_file_renders_without_a_placeholder_path(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path / "absent.yml")
    assert info.value.render() == f"invalid config:\n  config file {tmp_path / 'absent.yml'} does not exist"


def test_a_missing_api_key_file_is_a_config_error_naming_the_key_and_path(tmp_path: Path) -> None:
    cfg_file = tmp_path / "inferwatch.yml"
    cfg_file.write_text("elasticsearch:\n  hosts: [http://127.0.0.1:9200]\n  api_key_file: es-key\n")
    with pytest.raises(ConfigError) as info:
        load_config(cfg_file, env={})
    assert info.value.problems == [
        (
            "elasticsearch.api_key_file",
            f"file {tmp_path / 'es-key'} does not exist; create it or correct the path",
        )
    ]


def test_secret_files_are_relative_to_the_config_folder_and_must_not_be_empty(tmp_path: Path) -> None:
    conf = tmp_path / "conf"
    conf.mkdir()
    (conf / "es-key").write_text("s3cret\n")
    (conf / "pw").write_text("\n")
    cfg_file = conf / "inferwatch.yml"
    cfg_file.write_text("elasticsearch:\n  hosts: [http://127.0.0.1:9200]\n  api_key_file: es-key\n")
    cfg = load_config(cfg_file, env={})  # found although the cwd is elsewhere
    assert cfg.elasticsearch is not None and cfg.elasticsearch.api_key_file == conf / "es-key"
    assert cfg.elasticsearch.resolved_api_key() == Secret("s3cret")

    cfg_file.write_text(
        "elasticsearch:\n  hosts: [http://127.0.0.1:9200]\n  username: u\n  password_file: pw\n"
    )
    with pytest.raises(ConfigError) as info:
        load_config(cfg_file, env={})
    assert info.value.problems == [
        ("elasticsearch.password_file", f"file {conf / 'pw'} is empty; write the secret into it (one line)")
    ]


def test_a_secret_file_removed_after_loading_is_a_config_error_not_an_oserror(tmp_path: Path) -> None:
    key = tmp_path / "es-key"
    es = ElasticsearchConfig(hosts=("http://x:9200",), api_key_file=key)
    with pytest.raises(ConfigError) as info:
        es.resolved_api_key()
    assert info.value.problems == [
        ("elasticsearch.api_key_file", f"cannot read {key}: No such file or directory")
    ]


def test_credentials_in_a_host_url_are_refused_without_echoing_them() -> None:
    text = "elasticsearch:\n  hosts: ['https://elastic:hunter2@es.example:9200']\n"
    text += "kibana:\n  url: http://elastic:hunter2@kb.example:5601\n"
    found = dict(problems(text))
    assert "give https://es.example:9200 and put the credentials in" in found["elasticsearch.hosts[0]"]
    assert "give http://kb.example:5601 and" in found["kibana.url"]
    assert "hunter2" not in repr(found)


def test_a_closed_vocabulary_must_name_a_categorical_feature() -> None:
    text = "models:\n  churn:\n    features: {country: categorical, age: numeric}\n"
    found = dict(problems(text + "    categorical_closed: [contry, age]\n"))
    assert found == {
        "models.churn.categorical_closed[0]": "'contry' is not one of the model's features (country, age); "
        "a closed vocabulary names a categorical feature",
        "models.churn.categorical_closed[1]": "'age' is a numeric feature; only categorical features have a "
        "closed vocabulary",
    }
    assert parse_config(text + "    categorical_closed: [country]\n", {}).models[
        "churn"
    ].categorical_closed == ("country",)


# -- the YAML as written: environment-typed values, numbers kept as text, duplicate keys ---------


def test_an_environment_variable_sets_numbers_and_booleans() -> None:
    text = (
        "agent:\n  batch:\n    max_docs: ${MAXDOCS:-500}\n  workers: ${WORKERS}\n"
        "  spool:\n    fsync: ${FSYNC:-true}\n"
        "analytics:\n  false_alarms_per_week: '${FALSE_ALARMS}'\n"
    )
    cfg = parse_config(text, {"WORKERS": "2", "FSYNC": "false", "FALSE_ALARMS": "0.5"})
    assert cfg.agent.batch.max_docs == 500 and type(cfg.agent.batch.max_docs) is int
    assert cfg.agent.workers == 2
    assert cfg.agent.spool.fsync is False
    assert cfg.analytics.false_alarms_per_week == 0.5
    assert parse_config(text, {"MAXDOCS": "7", "WORKERS": "0", "FALSE_ALARMS": "1"}).agent.batch.max_docs == 7


def test_an_environment_value_that_is_not_a_number_names_the_key() -> None:
    found = dict(problems("agent:\n  batch:\n    max_docs: ${MAXDOCS}\n", {"MAXDOCS": "lots"}))
    assert found == {"agent.batch.max_docs": "expected an integer, got 'lots'"}


def test_an_empty_environment_value_leaves_an_optional_key_unset() -> None:
    cfg = parse_config("agent:\n  workers: ${WORKERS:-}\n  namespace: ${NS:-007}\n", {})
    assert cfg.agent.workers is None
    assert cfg.agent.namespace == "007"  # a string stays as written, leading zero included


def test_a_bare_number_where_a_string_is_expected_keeps_its_text() -> None:
    text = "agent:\n  inputs:\n    - paths: [a.jsonl]\n      version: 1.10\n      model: 0012\n"
    inp = parse_config(text, {}).agent.inputs[0]
    assert inp.version == "1.10"  # not the float 1.1 printed back
    assert inp.model == "0012"
    env = parse_config("agent:\n  inputs:\n    - paths: [a.jsonl]\n      version: ${V}\n", {"V": "2.0"})
    assert env.agent.inputs[0].version == "2.0"


def test_a_null_where_a_string_is_required_is_refused_and_an_optional_one_is_unset() -> None:
    assert (
        parse_config("agent:\n  inputs:\n    - paths: [a.jsonl]\n      version: ~\n", {})
        .agent.inputs[0]
        .version
        is None
    )
    found = dict(problems("agent:\n  namespace:\n"))
    assert found == {"agent.namespace": "is empty; give a value (or remove the key for its default)"}


def test_a_key_given_twice_is_refused_naming_both_lines() -> None:
    text = "agent:\n  inputs:\n    - paths: [a.jsonl]\nelasticsearch:\n  hosts: [http://x:9200]\nagent:\n  namespace: prod\n"
    assert problems(text) == [
        ("agent", "given twice, at line 1 and line 6 (YAML would keep only the last); merge the two into one")
    ]
    nested = problems("agent:\n  inputs:\n    - paths: [a.jsonl]\n      model: a\n      model: b\n")
    assert [path for path, _ in nested] == ["agent.inputs[0].model"]
    assert "line 4 and line 5" in nested[0][1]


def test_a_yaml_merge_key_is_not_a_duplicate() -> None:
    text = (
        "x-input: &base {model: churn, start_at: end}\n"
        "agent:\n  inputs:\n    - <<: *base\n      paths: [a.jsonl]\n      model: other\n"
    )
    found = dict(problems(text))
    assert list(found) == ["x-input"] and "unknown key" in found["x-input"]


def test_the_internal_source_field_is_not_a_key() -> None:
    found = dict(problems("source: /etc/passwd\n"))
    assert "unknown key" in found["source"]
    assert "source" not in found["source"].partition("known keys: ")[2]
    assert "source" not in unknown_keys_listed("kibana:\n  usrname: u\n")


def unknown_keys_listed(text: str) -> list[str]:
    (_, reason), *_ = problems(text)
    return reason.partition("known keys: ")[2].rstrip(")").split(", ")


def test_kibana_secrets_can_be_read_from_files(tmp_path: Path) -> None:
    (tmp_path / "kb-key").write_text("kb-s3cret\n")
    (tmp_path / "kb-pw").write_text("pw\n")
    cfg_file = tmp_path / "inferwatch.yml"
    cfg_file.write_text("kibana:\n  api_key_file: kb-key\n")
    cfg = load_config(cfg_file, env={})
    assert cfg.kibana is not None and cfg.kibana.resolved_api_key() == Secret("kb-s3cret")
    assert "api_key_file" in unknown_keys_listed("kibana:\n  usrname: u\n")

    cfg_file.write_text("kibana:\n  username: setup\n  password_file: kb-pw\n")
    cfg = load_config(cfg_file, env={})
    assert cfg.kibana is not None and cfg.kibana.resolved_password() == Secret("pw")

    cfg_file.write_text("kibana:\n  username: setup\n  password_file: absent\n")
    with pytest.raises(ConfigError) as info:
        load_config(cfg_file, env={})
    assert info.value.problems == [
        ("kibana.password_file", f"file {tmp_path / 'absent'} does not exist; create it or correct the path")
    ]
    found = dict(problems("kibana:\n  api_key: a\n  api_key_file: f\n  password_file: p\n"))
    assert "not both" in found["kibana.api_key_file"]
    assert "a password needs a username" in found["kibana.username"]


def test_credentials_in_a_url_query_string_are_refused_without_echoing_them() -> None:
    text = "elasticsearch:\n  hosts: ['https://es.example:9200/?timeout=5&password=hunter2']\n"
    text += "kibana:\n  url: http://kb.example:5601/?API_KEY=hunter2\n"
    found = dict(problems(text))
    assert (
        "give https://es.example:9200/?timeout=5 and put the credentials in"
        in found["elasticsearch.hosts[0]"]
    )
    assert "give http://kb.example:5601/ and" in found["kibana.url"]
    assert "hunter2" not in repr(found)
    # a parameter that merely starts like one is not a credential
    cfg = parse_config("elasticsearch:\n  hosts: ['https://es.example:9200/?keyword=1']\n", {})
    assert cfg.elasticsearch is not None and cfg.elasticsearch.hosts == (
        "https://es.example:9200/?keyword=1",
    )


def test_urls_in_messages_lose_every_credential() -> None:
    assert url_without_credentials("http://u:p@es:9200/p?token=t&a=1#f") == "http://es:9200/p?a=1#f"
    assert url_without_credentials("es:9200?redirect=http://a@b/") == "es:9200?redirect=http://a@b/"
    assert url_without_credentials("https://es:9200") == "https://es:9200"


def test_a_spool_smaller_than_two_segments_names_segment_bytes_and_the_sizes() -> None:
    found = dict(problems("agent:\n  spool: {max_bytes: 16MiB}\n"))
    reason = found["agent.spool.max_bytes"]
    assert "spool.segment_bytes" in reason  # the default 16MiB segment is the other half of it
    assert str(2 * 16 * 1024**2) in reason and str(16 * 1024**2) in reason


def test_max_in_flight_is_checked_with_its_path() -> None:
    found = dict(problems("agent:\n  output: {max_in_flight: 0}\n"))
    assert "1 to 16" in found["agent.output.max_in_flight"]
