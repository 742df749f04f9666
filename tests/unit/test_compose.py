"""docker-compose.yml, the Dockerfile and the compose config checked offline (Docker cannot run
on the build machines): local-only ports, healthchecks, start order, secrets only from .env,
memory limits, a non-root image, least-privilege users for the agent and the worker (the
setup-credentials script run for real against a loopback fake of Elasticsearch's security API)."""

from __future__ import annotations

import base64
import fnmatch
import json
import os
import re
import shutil
import subprocess
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import jsonschema
import pytest
import yaml

from inferwatch.core.config import parse_config

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_TEXT = (ROOT / "docker-compose.yml").read_text(encoding="utf-8")
COMPOSE: dict[str, Any] = yaml.safe_load(COMPOSE_TEXT)
SERVICES: dict[str, Any] = COMPOSE["services"]
ENV_EXAMPLE = (ROOT / ".env.example").read_text(encoding="utf-8")
SECRET_VARS = {
    "ELASTIC_PASSWORD",
    "KIBANA_PASSWORD",
    "KIBANA_ENCRYPTION_KEY",
    "AGENT_ES_PASSWORD",
    "WORKER_ES_PASSWORD",
}
SUPERUSER_SERVICES = {
    "elasticsearch",
    "kibana-password",
    "setup-credentials",
    "setup-elasticsearch",
    "setup-kibana",
}


def _env_example() -> dict[str, str]:
    pairs = [
        line.split("=", 1) for line in ENV_EXAMPLE.splitlines() if line.strip() and not line.startswith("#")
    ]
    return {k.strip(): v.strip() for k, v in pairs}


def test_the_compose_file_is_valid_against_the_compose_specification() -> None:
    """The Compose Specification's own JSON schema (vendored, tests/fixtures/compose): an unknown or
    misspelled key, a wrong type or an invalid depends_on condition fails here as it would in
    ``docker compose config``."""
    schema = json.loads((ROOT / "tests" / "fixtures" / "compose" / "compose-spec.json").read_text())
    validator = jsonschema.Draft7Validator(schema)
    errors = [f"{'.'.join(map(str, e.path))}: {e.message}" for e in validator.iter_errors(COMPOSE)]
    assert not errors, errors
    broken = {**COMPOSE, "services": {**SERVICES, "agent": {**SERVICES["agent"], "helthcheck": {}}}}
    assert any("helthcheck" in e.message for e in validator.iter_errors(broken))


def test_the_stack_has_every_service() -> None:
    assert set(SERVICES) == {
        "elasticsearch",
        "kibana-password",
        "kibana",
        "setup-credentials",
        "setup-elasticsearch",
        "setup-kibana",
        "demo-model",
        "agent",
        "worker",
    }


def test_ports_are_bound_to_loopback_only() -> None:
    published = [(name, p) for name, s in SERVICES.items() for p in s.get("ports", [])]
    assert {name for name, _ in published} == {"elasticsearch", "kibana", "agent", "worker"}
    for name, port in published:
        assert isinstance(port, str) and port.startswith("127.0.0.1:"), (name, port)


def test_healthchecks_on_the_long_running_servers() -> None:
    for name in ("elasticsearch", "kibana", "agent", "worker"):
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
    assert _conditions("setup-credentials") == {"elasticsearch": "service_healthy"}
    # No document is written before the templates exist (else the data stream takes default mappings),
    # and the agent and the worker start once their users exist.
    for name in ("agent", "worker"):
        assert _conditions(name)["setup-elasticsearch"] == "service_completed_successfully"
        assert _conditions(name)["setup-credentials"] == "service_completed_successfully"
    assert set(_conditions("worker")) == {"setup-elasticsearch", "setup-credentials"}
    for one_shot in ("kibana-password", "setup-credentials", "setup-elasticsearch", "setup-kibana"):
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


def _service_env(name: str) -> dict[str, str]:
    """A service's environment as compose passes it, ${VAR...} taken from .env.example."""
    example = _env_example()

    def interpolate(value: str) -> str:
        return re.sub(
            r"(?<!\$)\$\{([A-Z_][A-Z0-9_]*)(?::[-?]([^}]*))?\}",
            lambda m: example.get(m.group(1), m.group(2) or ""),
            value,
        )

    return {k: interpolate(str(v)) for k, v in (SERVICES[name].get("environment") or {}).items()}


def _config_for(name: str) -> Any:
    text = (ROOT / "docker" / "inferwatch.yml").read_text(encoding="utf-8")
    return parse_config(text, env=_service_env(name))


def test_the_compose_config_loads_and_points_at_the_services() -> None:
    text = (ROOT / "docker" / "inferwatch.yml").read_text(encoding="utf-8")
    cfg = _config_for("setup-kibana")
    assert cfg.elasticsearch is not None and cfg.elasticsearch.hosts == ("http://elasticsearch:9200",)
    assert cfg.kibana is not None and cfg.kibana.url == "http://kibana:5601"
    assert cfg.agent.inputs[0].paths == ("/logs/*.jsonl*",)
    assert "cars_mpg" in cfg.models
    assert "INFERWATCH_ES_PASSWORD" in text and _env_example()["ELASTIC_PASSWORD"] not in text


def test_only_the_setup_one_shots_use_the_superuser() -> None:
    users = {}
    for name in ("setup-elasticsearch", "setup-kibana", "agent", "worker"):
        cfg = _config_for(name)
        assert cfg.elasticsearch is not None
        password = cfg.elasticsearch.resolved_password()
        users[name] = (cfg.elasticsearch.username, password.reveal() if password is not None else None)
    example = _env_example()
    assert users["setup-elasticsearch"] == ("elastic", example["ELASTIC_PASSWORD"])
    assert users["agent"] == ("inferwatch_agent", example["AGENT_ES_PASSWORD"])
    assert users["worker"] == ("inferwatch_worker", example["WORKER_ES_PASSWORD"])
    for name, s in SERVICES.items():  # the superuser's password is nowhere else
        if name not in SUPERUSER_SERVICES:
            assert "ELASTIC_PASSWORD" not in str(s.get("environment") or {}), name
    for name in ("agent", "worker"):
        cfg = _config_for(name)
        assert cfg.kibana is not None and cfg.kibana.password is None  # they never call Kibana


def _published(name: str) -> dict[int, str]:
    """container port -> the host address:port it is published on."""
    out = {}
    for port in SERVICES[name].get("ports", []):
        host, _, container = port.rpartition(":")
        out[int(container)] = host
    return out


def test_metrics_endpoints_are_reachable_in_the_container_and_published_on_loopback() -> None:
    """Bound to 127.0.0.1 inside the container nothing could scrape them: they listen on every
    interface of the container, are published on the host's 127.0.0.1 only, and the healthcheck
    probes liveness (/livez), never readiness (an Elasticsearch outage must not restart them)."""
    agent, worker = _config_for("agent"), _config_for("worker")
    for name, listen in (("agent", agent.agent.metrics.listen), ("worker", worker.analytics.metrics.listen)):
        assert listen is not None
        host, _, port = listen.rpartition(":")
        assert host == "0.0.0.0", (name, listen)
        assert _published(name)[int(port)].startswith("127.0.0.1:"), name
        probe = " ".join(SERVICES[name]["healthcheck"]["test"])
        assert f"http://127.0.0.1:{port}/livez" in probe, probe
        assert "/readyz" not in probe and "/health'" not in probe


# -- least-privilege roles ---------------------------------------------------------------------


def _role(component: str) -> dict[str, Any]:
    return json.loads((ROOT / "docker" / "roles" / f"inferwatch_{component}.json").read_text())


def _granted(role: dict[str, Any], index: str) -> set[str]:
    """The index privileges ``role`` grants on ``index`` (names are patterns, as Elasticsearch
    matches them with * wildcards)."""
    out: set[str] = set()
    for entry in role["indices"]:
        if any(fnmatch.fnmatchcase(index, pattern) for pattern in entry["names"]):
            out |= set(entry["privileges"])
    return out


def test_the_agent_role_may_only_create_documents_in_its_data_streams() -> None:
    from inferwatch.agent.outputs.elasticsearch import WRITE_PRIVILEGES
    from inferwatch.core.contract import (
        ALERTS_INDEX,
        BASELINES_INDEX,
        DEAD_LETTER_INDEX,
        HISTORY_STREAM,
        LOGS_PATTERN,
        data_stream,
    )

    role = _role("agent")
    cfg = _config_for("agent")
    assert cfg.agent.dead_letter_index == DEAD_LETTER_INDEX
    for model in ("cars_mpg", "churn.classifier"):  # any model a line names, in any namespace
        for namespace in (cfg.agent.namespace, "prod"):
            assert _granted(role, data_stream(model, namespace)) == set(WRITE_PRIVILEGES)
    assert _granted(role, DEAD_LETTER_INDEX) == {"create_doc", "auto_configure"}
    # What the agent's check asks _has_privileges for, on the pattern itself.
    assert _granted(role, LOGS_PATTERN) >= set(WRITE_PRIVILEGES)
    for other in (ALERTS_INDEX, BASELINES_INDEX, HISTORY_STREAM, ".security-7", "logs-nginx.access-default"):
        assert not _granted(role, other), other
    assert role["cluster"] == ["cluster:monitor/main"]  # GET / in the agent's check; nothing else


def test_the_worker_role_reads_the_logs_and_writes_only_its_own_indices() -> None:
    from inferwatch.core.contract import (
        ALERTS_INDEX,
        BASELINES_INDEX,
        DEAD_LETTER_INDEX,
        HISTORY_STREAM,
        INCIDENTS_INDEX,
        LOGS_PATTERN,
        data_stream,
    )

    role = _role("worker")
    for index in (LOGS_PATTERN, data_stream("cars_mpg", "default")):
        assert _granted(role, index) == {"read", "view_index_metadata"}  # never forge a prediction
    assert _granted(role, BASELINES_INDEX) == {"read", "view_index_metadata"}
    for index in (ALERTS_INDEX, INCIDENTS_INDEX):  # documents updated in place by id
        assert {"read", "index"} <= _granted(role, index) and "delete" not in _granted(role, index)
    assert {"read", "create_doc"} <= _granted(role, HISTORY_STREAM)  # append-only
    assert not _granted(role, DEAD_LETTER_INDEX) and not _granted(role, ".security-7")
    broad = {"all", "write", "delete", "manage", "delete_index", "create_index"}
    for entry in role["indices"]:
        assert not broad & set(entry["privileges"]), entry
    assert role["cluster"] == ["cluster:monitor/main"]


class _FakeSecurityAPI(BaseHTTPRequestHandler):
    """PUT /_security/role/<name> and POST /_security/user/<name> as Elasticsearch answers them
    (200 with created true); 401 when the password is not the elastic user's."""

    calls: ClassVar[list[tuple[str, str, str, dict[str, Any]]]] = []
    elastic_password: ClassVar[str] = ""

    def _handle(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        auth = base64.b64decode(self.headers["Authorization"].split()[1]).decode()
        type(self).calls.append((self.command, self.path, auth, body))
        if auth != f"elastic:{self.elastic_password}":
            code, answer = 401, {"error": {"type": "security_exception"}, "status": 401}
        elif self.path.startswith("/_security/role/"):
            code, answer = 200, {"role": {"created": True}}
        else:
            code, answer = 200, {"created": True}
        data = json.dumps(answer).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_PUT = do_POST = _handle

    def log_message(self, format: str, *args: object) -> None:
        pass


def _run_setup_credentials(
    env: dict[str, str], elastic_password: str
) -> tuple[subprocess.CompletedProcess[str], list[Any]]:
    _FakeSecurityAPI.calls = []
    _FakeSecurityAPI.elastic_password = elastic_password
    server = ThreadingHTTPServer(("127.0.0.1", 0), _FakeSecurityAPI)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        proc = subprocess.run(
            ["bash", str(ROOT / "docker" / "setup-credentials.sh")],
            env={
                "PATH": os.environ["PATH"],
                "ES_URL": f"http://127.0.0.1:{server.server_address[1]}",
                "ROLES_DIR": str(ROOT / "docker" / "roles"),
                **env,
            },
            capture_output=True,
            text=True,
            timeout=60,
        )
    finally:
        server.shutdown()
        server.server_close()
    return proc, list(_FakeSecurityAPI.calls)


@pytest.mark.skipif(
    shutil.which("curl") is None, reason="the script runs curl (as the elasticsearch image has)"
)
def test_setup_credentials_creates_the_roles_and_users() -> None:
    setup = SERVICES["setup-credentials"]
    assert setup["command"] == ["bash", "/setup-credentials.sh"]
    assert "./docker/setup-credentials.sh:/setup-credentials.sh:ro" in setup["volumes"]
    assert "./docker/roles:/roles:ro" in setup["volumes"]
    env = {k: v for k, v in _service_env("setup-credentials").items() if k not in ("ES_URL", "ROLES_DIR")}
    proc, calls = _run_setup_credentials(env, env["ELASTIC_PASSWORD"])
    assert proc.returncode == 0, proc.stderr
    elastic = f"elastic:{env['ELASTIC_PASSWORD']}"
    assert calls == [
        ("PUT", "/_security/role/inferwatch_agent", elastic, _role("agent")),
        ("PUT", "/_security/role/inferwatch_worker", elastic, _role("worker")),
        (
            "POST",
            "/_security/user/inferwatch_agent",
            elastic,
            {
                "password": env["AGENT_ES_PASSWORD"],
                "roles": ["inferwatch_agent"],
                "full_name": "inferwatch agent",
            },
        ),
        (
            "POST",
            "/_security/user/inferwatch_worker",
            elastic,
            {
                "password": env["WORKER_ES_PASSWORD"],
                "roles": ["inferwatch_worker"],
                "full_name": "inferwatch worker",
            },
        ),
    ]
    assert env["AGENT_ES_PASSWORD"] not in proc.stdout + proc.stderr  # passwords are not echoed
    # The users the agent's and the worker's configs name are the ones created here.
    assert _config_for("agent").elasticsearch.username == "inferwatch_agent"
    assert _config_for("worker").elasticsearch.username == "inferwatch_worker"


@pytest.mark.skipif(
    shutil.which("curl") is None, reason="the script runs curl (as the elasticsearch image has)"
)
def test_setup_credentials_fails_on_a_refusal_or_an_unusable_password() -> None:
    env = {
        "ELASTIC_PASSWORD": "wrong-one",
        "AGENT_ES_PASSWORD": "agent-pw",
        "WORKER_ES_PASSWORD": "worker-pw",
    }
    proc, calls = _run_setup_credentials(env, "the-real-one")
    assert proc.returncode == 1 and "HTTP 401" in proc.stderr and len(calls) == 1
    for bad in ("short", 'has"quote'):
        proc, calls = _run_setup_credentials({**env, "AGENT_ES_PASSWORD": bad}, "wrong-one")
        assert proc.returncode == 1 and "AGENT_ES_PASSWORD" in proc.stderr and not calls


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
