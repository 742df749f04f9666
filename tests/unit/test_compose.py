"""docker-compose.yml, the Dockerfile and the compose config checked offline (Docker cannot run
on the build machines): local-only ports, healthchecks, start order, secrets only from .env,
memory limits, a non-root image."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from inferwatch.core.config import parse_config

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_TEXT = (ROOT / "docker-compose.yml").read_text(encoding="utf-8")
COMPOSE: dict[str, Any] = yaml.safe_load(COMPOSE_TEXT)
SERVICES: dict[str, Any] = COMPOSE["services"]
ENV_EXAMPLE = (ROOT / ".env.example").read_text(encoding="utf-8")
SECRET_VARS = {"ELASTIC_PASSWORD", "KIBANA_PASSWORD", "KIBANA_ENCRYPTION_KEY"}


def _env_example() -> dict[str, str]:
    pairs = [
        line.split("=", 1) for line in ENV_EXAMPLE.splitlines() if line.strip() and not line.startswith("#")
    ]
    return {k.strip(): v.strip() for k, v in pairs}


def test_the_stack_has_every_service() -> None:
    assert set(SERVICES) == {
        "elasticsearch",
        "kibana-password",
        "kibana",
        "setup-elasticsearch",
        "setup-kibana",
        "demo-model",
        "agent",
        "worker",
    }


def test_ports_are_bound_to_loopback_only() -> None:
    published = [(name, p) for name, s in SERVICES.items() for p in s.get("ports", [])]
    assert {name for name, _ in published} == {"elasticsearch", "kibana"}
    for name, port in published:
        assert isinstance(port, str) and port.startswith("127.0.0.1:"), (name, port)


def test_healthchecks_on_the_long_running_servers() -> None:
    for name in ("elasticsearch", "kibana", "agent"):
        check = SERVICES[name]["healthcheck"]
        assert check["test"][0] in ("CMD", "CMD-SHELL") and check["retries"] >= 3
    es_check = " ".join(SERVICES["elasticsearch"]["healthcheck"]["test"])
    assert "$${ELASTIC_PASSWORD}" in es_check  # the container's variable, not interpolated inline
    assert "_cluster/health" in es_check


def _conditions(name: str) -> dict[str, str]:
    deps = SERVICES[name].get("depends_on") or {}
    assert isinstance(deps, dict), f"{name}: depends_on must name conditions"
    return {dep: spec["condition"] for dep, spec in deps.items()}


def test_start_order_uses_conditions() -> None:
    assert _conditions("kibana-password") == {"elasticsearch": "service_healthy"}
    assert _conditions("kibana") == {"kibana-password": "service_completed_successfully"}
    assert _conditions("setup-elasticsearch") == {"elasticsearch": "service_healthy"}
    assert _conditions("setup-kibana") == {
        "setup-elasticsearch": "service_completed_successfully",
        "kibana": "service_healthy",
    }
    # No document is written before the templates exist (else the data stream takes default mappings).
    assert _conditions("agent")["setup-elasticsearch"] == "service_completed_successfully"
    assert _conditions("worker") == {"setup-elasticsearch": "service_completed_successfully"}
    for one_shot in ("kibana-password", "setup-elasticsearch", "setup-kibana"):
        assert SERVICES[one_shot]["restart"] == "no"


def test_every_service_has_a_memory_limit() -> None:
    for name, s in SERVICES.items():
        assert s.get("mem_limit"), name


def _variables(text: str) -> set[str]:
    # ${VAR}, ${VAR:-default}, ${VAR:?message}; "$${VAR}" is the container's own variable.
    return set(re.findall(r"(?<!\$)\$\{([A-Z_][A-Z0-9_]*)", text))


def test_variables_come_from_env_and_secrets_are_required() -> None:
    example = _env_example()
    used = _variables(COMPOSE_TEXT)
    assert used >= SECRET_VARS
    assert used <= set(example), used - set(example)
    for var in SECRET_VARS:
        refs = re.findall(r"(?<!\$)\$\{" + var + r"([^}]*)\}", COMPOSE_TEXT)
        assert refs and all(r.startswith(":?") for r in refs), (var, refs)  # no silent default
        assert "change-me" in example[var]


def test_no_secret_is_written_inline() -> None:
    example = _env_example()
    for var in SECRET_VARS:
        assert example[var] not in COMPOSE_TEXT
    for name, s in SERVICES.items():
        env = s.get("environment") or {}
        assert isinstance(env, dict), name
        for key, value in env.items():
            if re.search(r"PASSWORD|SECRET|TOKEN|ENCRYPTIONKEY|API_KEY", key.upper()):
                assert isinstance(value, str) and value.startswith("${"), (name, key)


def test_elasticsearch_and_kibana_settings() -> None:
    es = SERVICES["elasticsearch"]["environment"]
    assert es["discovery.type"] == "single-node"
    assert es["xpack.security.enabled"] == "true"
    assert SERVICES["elasticsearch"]["image"].startswith("docker.elastic.co/elasticsearch/elasticsearch:")
    assert re.search(r"STACK_VERSION:-8\.", SERVICES["elasticsearch"]["image"])
    assert _env_example()["STACK_VERSION"].startswith("8.")
    kb = SERVICES["kibana"]["environment"]
    assert kb["ELASTICSEARCH_USERNAME"] == "kibana_system"
    assert "KIBANA_ENCRYPTION_KEY" in kb["XPACK_ENCRYPTEDSAVEDOBJECTS_ENCRYPTIONKEY"]
    assert len(_env_example()["KIBANA_ENCRYPTION_KEY"]) >= 32
    for name in ("elasticsearch", "kibana"):
        assert SERVICES[name]["volumes"]


def test_inferwatch_services_share_the_log_volume_and_config() -> None:
    assert SERVICES["demo-model"]["command"] == [
        "demo",
        "--serve",
        "--log-dir",
        "/logs",
        "--baseline-dir",
        "/baselines",
    ]
    assert "logs:/logs" in SERVICES["demo-model"]["volumes"]
    # The worker reads the demo model's baseline where analytics.baselines_dir defaults to.
    assert "baselines:/baselines" in SERVICES["demo-model"]["volumes"]
    assert "baselines:/var/lib/inferwatch/baselines:ro" in SERVICES["worker"]["volumes"]
    assert "logs:/logs:ro" in SERVICES["agent"]["volumes"]
    mount = "./docker/inferwatch.yml:/etc/inferwatch/inferwatch.yml:ro"
    for name in ("setup-elasticsearch", "setup-kibana", "agent", "worker"):
        assert mount in SERVICES[name]["volumes"]
        assert SERVICES[name]["image"] == "inferwatch:local"
        assert "/etc/inferwatch/inferwatch.yml" in SERVICES[name]["command"]
    assert "--skip-kibana" in SERVICES["setup-elasticsearch"]["command"]
    assert set(COMPOSE["volumes"]) == {
        "esdata",
        "kibanadata",
        "logs",
        "agent-data",
        "worker-data",
        "baselines",
    }


def test_the_compose_config_loads_and_points_at_the_services() -> None:
    text = (ROOT / "docker" / "inferwatch.yml").read_text(encoding="utf-8")
    cfg = parse_config(text, env={"ELASTIC_PASSWORD": "x" * 12})
    assert cfg.elasticsearch is not None and cfg.elasticsearch.hosts == ("http://elasticsearch:9200",)
    assert cfg.kibana is not None and cfg.kibana.url == "http://kibana:5601"
    assert cfg.agent.inputs[0].paths == ("/logs/*.jsonl*",)
    assert "cars_mpg" in cfg.models
    assert cfg.agent.metrics.listen == "127.0.0.1:9464"  # the agent healthcheck's URL
    assert "ELASTIC_PASSWORD" in text and "x" * 12 not in text


def test_dotenv_is_ignored_by_git_and_docker() -> None:
    assert ".env" in (ROOT / ".gitignore").read_text(encoding="utf-8").split()
    assert ".env" in (ROOT / ".dockerignore").read_text(encoding="utf-8").split()


@pytest.mark.parametrize("line", ["FROM python:3.11-slim", "USER 10001:10001", 'ENTRYPOINT ["inferwatch"]'])
def test_dockerfile_is_small_and_non_root(line: str) -> None:
    lines = (ROOT / "Dockerfile").read_text(encoding="utf-8").splitlines()
    assert line in lines
    runtime = lines[max(i for i, x in enumerate(lines) if x.startswith("FROM")) :]
    users = [x for x in runtime if x.startswith("USER ")]
    assert users and users[-1] != "USER root" and "0" not in users[-1].split()[1].split(":")
