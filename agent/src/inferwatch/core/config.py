"""The one YAML config shared by agent, analytics worker and setup: the public contract.

Each component receives its own section as a frozen object. ``load_config(path)`` expands
``${ENV}`` (and ``${ENV:-default}``), validates everything, and raises ``ConfigError`` with
every offending key path and the reason. Secrets may also be read from files
(``api_key_file``, ``password_file``) so they never sit in the YAML.
"""

from __future__ import annotations

import os
import re
import urllib.parse
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Literal

from inferwatch.core.configschema import ByteSize, ConfigError, Duration, Secret, build, expand_env
from inferwatch.core.configyaml import Scalar, load_yaml
from inferwatch.core.contract import model_dataset
from inferwatch.core.layout import DataDir

if TYPE_CHECKING:
    import yaml

FeatureKind = Literal["categorical", "numeric", "text"]
Problems = Iterator[tuple[str, str]]

_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_.]{0,99}$")


def data_stream_part_problem(name: str) -> str | None:
    """Why ``name`` can't be a data stream dataset/namespace part, or None if it can."""
    if "-" in name:
        return "must not contain '-' (it separates type, dataset and namespace of a data stream)"
    if not _NAME_RE.match(name.lower()):
        return "must be 1-100 characters of letters, digits, '_' and '.'"
    return None


def model_name_problem(name: str) -> str | None:
    """Model names are free text in the log lines; only their dataset part must be usable."""
    if not name or not _NAME_RE.match(model_dataset(name)):
        return (
            "must start with a letter or digit (it names the data stream logs-inferwatch.<model>-<namespace>)"
        )
    return None


_CREDENTIALS_IN_URL = (
    "must not carry credentials (a user or password before the host, or a password, api_key or "
    "token parameter: they would show in logs and messages): give {url} "
    "and put the credentials in username + password (or password_file) or api_key"
)

# Query parameters that carry a credential (compared lowercased): refused in a configured URL and
# removed from URLs in messages.
_SECRET_PARAMS = frozenset(
    {
        "access_token",
        "api-key",
        "api_key",
        "apikey",
        "auth",
        "authorization",
        "client_secret",
        "key",
        "pass",
        "passwd",
        "password",
        "pwd",
        "secret",
        "token",
    }
)


def _url_parts(url: str) -> tuple[str, str, str, str]:
    """``(scheme://, authority, path, ?query#fragment)`` of ``url``, with or without a scheme."""
    i = url.find("://")
    prefix, rest = (url[: i + 3], url[i + 3 :]) if i >= 0 and not set("/?#@") & set(url[:i]) else ("", url)
    authority = re.match(r"[^/?#]*", rest)[0]  # type: ignore[index]
    path = re.match(r"[^?#]*", rest[len(authority) :])[0]  # type: ignore[index]
    return prefix, authority, path, rest[len(authority) + len(path) :]


def _is_secret_param(pair: str) -> bool:
    return urllib.parse.unquote_plus(pair.partition("=")[0]).strip().lower() in _SECRET_PARAMS


def url_has_credentials(url: str) -> bool:
    """``user:password@`` (or ``user@``) before the host of ``url``, with or without a scheme, or
    a credential in its query string (``?password=``, ``?api_key=``, ``?token=``...)."""
    _, authority, _, query = _url_parts(url)
    params = query.partition("#")[0].removeprefix("?").split("&")
    return "@" in authority or any(_is_secret_param(p) for p in params if p)


def url_without_credentials(url: str) -> str:
    """``url`` with any ``user:password@`` and credential query parameters removed, for messages
    and logs."""
    if not url_has_credentials(url):
        return url
    prefix, authority, path, rest = _url_parts(url)
    query, hash_, fragment = rest.partition("#")
    kept = "&".join(p for p in query.removeprefix("?").split("&") if p and not _is_secret_param(p))
    return f"{prefix}{authority.rpartition('@')[2]}{path}{'?' if kept else ''}{kept}{hash_}{fragment}"


@dataclass(frozen=True)
class FieldPaths:
    """Where each part of a prediction lives in the log line (dotted paths)."""

    timestamp: str = "timestamp"
    model: str = "model"
    version: str = "model_version"
    prediction_id: str = "prediction_id"
    inputs: str = "inputs"
    outputs: str = "outputs"
    latency: str = "latency_ms"


@dataclass(frozen=True)
class InputConfig:
    paths: tuple[str, ...]
    model: str | None = None  # used when a line names no model
    version: str | None = None  # used when a line names no version
    fields: FieldPaths = field(default_factory=FieldPaths)
    exclude: tuple[str, ...] = ()  # globs never read (e.g. "*.gz")
    start_at: Literal["beginning", "end"] = "beginning"  # for files found at the first start
    document_id: Literal["offset", "prediction_id"] = "offset"
    namespace: str | None = None  # overrides agent.namespace

    def validate(self) -> Problems:
        if not self.paths:
            yield "paths", "needs at least one glob"
        for i, p in enumerate(self.paths):
            if not os.path.isabs(p) and not p.startswith(("./", "../")) and "/" not in p:
                continue
            if p.endswith("/"):
                yield f"paths[{i}]", "is a directory; give a glob such as /var/log/models/*.jsonl"


@dataclass(frozen=True)
class RedactConfig:
    """Fields of the log line (dotted paths, e.g. ``inputs.email``) removed or hashed on the host."""

    drop: tuple[str, ...] = ()
    hash: tuple[str, ...] = ()
    hash_key_env: str = "INFERWATCH_HASH_KEY"  # HMAC-SHA256 key, read from the environment

    @property
    def active(self) -> bool:
        """Whether any field is dropped or hashed (then every line goes through the Python
        normalizer, where redaction lives)."""
        return bool(self.drop or self.hash)

    def validate(self) -> Problems:
        if self.hash and not os.environ.get(self.hash_key_env):
            yield "hash", f"hashing needs a key in the environment variable {self.hash_key_env}"
        both = set(self.drop) & set(self.hash)
        if both:
            yield "hash", f"fields both dropped and hashed: {', '.join(sorted(both))}"


@dataclass(frozen=True)
class DeadLetterConfig:
    """The local dead letter, ``<data_dir>/dead-letter.ndjson`` (see agent.rejects)."""

    # A rejected line that does not parse cannot be redacted (agent.redact): it is kept as its
    # reason, offset and length only, unless this is true (then as read, on the host only).
    keep_unparsed: bool = False


@dataclass(frozen=True)
class SpoolConfig:
    max_bytes: ByteSize = ByteSize(1024**3)  # when full, reading pauses and the log files buffer
    segment_bytes: ByteSize = ByteSize(16 * 1024**2)
    fsync: bool = True

    def validate(self) -> Problems:
        if self.segment_bytes < 64 * 1024:
            yield "segment_bytes", "must be at least 64KiB"
        if self.max_bytes < 2 * self.segment_bytes:
            yield (
                "max_bytes",
                (
                    f"must be at least two segments (2 x spool.segment_bytes = {2 * self.segment_bytes} bytes, "
                    f"got {self.max_bytes}): raise max_bytes or lower spool.segment_bytes"
                ),
            )


@dataclass(frozen=True)
class BatchConfig:
    max_docs: int = 2000
    max_bytes: ByteSize = ByteSize(4 * 1024**2)  # uncompressed bulk body
    max_wait: Duration = Duration(1.0)

    def validate(self) -> Problems:
        if self.max_docs < 1:
            yield "max_docs", "must be at least 1"
        if self.max_bytes < 1024:
            yield "max_bytes", "must be at least 1KiB"


@dataclass(frozen=True)
class OutputConfig:
    # Bulk requests sent at once. The spool is still acknowledged in order: a record only when
    # every item before it has a final outcome.
    max_in_flight: int = 2

    def validate(self) -> Problems:
        if not 1 <= self.max_in_flight <= 16:
            yield "max_in_flight", "must be 1 to 16 (bulk requests sent at once)"


@dataclass(frozen=True)
class MetricsConfig:
    listen: str | None = None  # "127.0.0.1:9464" serves /metrics and /health

    def validate(self) -> Problems:
        if self.listen is not None:
            host, _, port = self.listen.rpartition(":")
            if not host or not port.isdigit() or not 0 <= int(port) < 65536:
                yield "listen", "expected host:port such as 127.0.0.1:9464"


@dataclass(frozen=True)
class AgentConfig:
    inputs: tuple[InputConfig, ...] = ()
    data_dir: Path = Path("./data")
    name: str | None = None  # agent.name in every document (default: the host name)
    namespace: str = "default"
    max_line_bytes: ByteSize = ByteSize(1024**2)
    scan_interval: Duration = Duration(10.0)  # periodic glob scan beside watchdog events
    read_buffer_bytes: ByteSize = ByteSize(256 * 1024)
    shutdown_timeout: Duration = Duration(10.0)
    redact: RedactConfig = field(default_factory=RedactConfig)
    spool: SpoolConfig = field(default_factory=SpoolConfig)
    batch: BatchConfig = field(default_factory=BatchConfig)
    output: OutputConfig = field(default_factory=OutputConfig)
    metrics: MetricsConfig = field(default_factory=MetricsConfig)
    dead_letter_index: str | None = None  # also index dead letters in Elasticsearch
    dead_letter: DeadLetterConfig = field(default_factory=DeadLetterConfig)
    # Threads that gzip sealed batches beside the read thread (zlib runs without the GIL, so
    # compression uses a second core); 0: the read thread compresses; null: one per CPU beyond
    # the first, at most 1.
    workers: int | None = None
    # Processes that parse lines beside the read thread (the Python normalizer holds the GIL:
    # one process parses about 60k lines/s); 0: the read thread parses everything; null: none
    # when the native normalizer takes every input, else one on a machine with two or more
    # CPUs. A worker starts only when a read brings 256 lines or more at once, and stops after
    # 5 minutes without such a read.
    parse_workers: int | None = None

    def validate(self) -> Problems:
        problem = data_stream_part_problem(self.namespace)
        if problem:
            yield "namespace", problem
        for i, inp in enumerate(self.inputs):
            if inp.namespace and (problem := data_stream_part_problem(inp.namespace)):
                yield f"inputs[{i}].namespace", problem
            if inp.model is not None and (problem := model_name_problem(inp.model)):
                yield f"inputs[{i}].model", problem
        if self.max_line_bytes < 1024:
            yield "max_line_bytes", "must be at least 1KiB"
        if self.workers is not None and not 0 <= self.workers <= 8:
            yield "workers", "must be 0 (compress in the read thread) to 8, or null for automatic"
        if self.parse_workers is not None and not 0 <= self.parse_workers <= 8:
            yield "parse_workers", "must be 0 (parse in the read thread) to 8, or null for automatic"


def _credential_problems(
    api_key: Secret | None,
    api_key_file: Path | None,
    username: str | None,
    password: Secret | None,
    password_file: Path | None,
) -> Problems:
    """The rules the credentials of Elasticsearch and Kibana share."""
    if (api_key or api_key_file) and (username or password or password_file):
        yield "api_key", "give either api_key or username/password, not both"
    if (password or password_file) and not username:
        yield "username", "a password needs a username"


@dataclass(frozen=True)
class ElasticsearchConfig:
    hosts: tuple[str, ...] = ()
    api_key: Secret | None = None
    api_key_file: Path | None = None
    username: str | None = None
    password: Secret | None = None
    password_file: Path | None = None
    ca_certs: Path | None = None
    verify_certs: bool = True
    ssl_assert_fingerprint: str | None = None
    request_timeout: Duration = Duration(30.0)
    compression_level: int = 1
    retention: str = "30d"  # data stream lifecycle data_retention of prediction logs
    alerts_retention: str = "365d"

    def validate(self) -> Problems:
        if not self.hosts:
            yield "hosts", "needs at least one URL such as https://127.0.0.1:9200"
        for i, h in enumerate(self.hosts):
            if url_has_credentials(h):
                yield f"hosts[{i}]", _CREDENTIALS_IN_URL.format(url=url_without_credentials(h))
            elif not h.startswith(("http://", "https://")):
                yield f"hosts[{i}]", f"must start with http:// or https://, got {h!r}"
        yield from _credential_problems(
            self.api_key, self.api_key_file, self.username, self.password, self.password_file
        )
        if not 0 <= self.compression_level <= 9:
            yield "compression_level", "must be 0 (off) to 9"
        if not re.fullmatch(r"[0-9]+[dhms]", self.retention):
            yield "retention", "expected a time such as 30d"

    def resolved_api_key(self) -> Secret | None:
        return self.api_key or _read_secret(self.api_key_file, "elasticsearch.api_key_file")

    def resolved_password(self) -> Secret | None:
        return self.password or _read_secret(self.password_file, "elasticsearch.password_file")


@dataclass(frozen=True)
class ConnectorsConfig:
    """Optional notification channels. Slack, webhook and email need a Kibana gold license."""

    slack_webhook_url: Secret | None = None
    webhook_url: Secret | None = None
    email_to: tuple[str, ...] = ()
    email_connector_id: str | None = None  # a preconfigured email connector in kibana.yml


@dataclass(frozen=True)
class KibanaConfig:
    url: str = "http://127.0.0.1:5601"
    space: str | None = None
    api_key: Secret | None = None
    api_key_file: Path | None = None
    username: str | None = None
    password: Secret | None = None
    password_file: Path | None = None
    ca_certs: Path | None = None
    verify_certs: bool = True
    wait_timeout: Duration = Duration(300.0)
    connectors: ConnectorsConfig = field(default_factory=ConnectorsConfig)

    def validate(self) -> Problems:
        if url_has_credentials(self.url):
            yield "url", _CREDENTIALS_IN_URL.format(url=url_without_credentials(self.url))
        elif not self.url.startswith(("http://", "https://")):
            yield "url", f"must start with http:// or https://, got {self.url!r}"
        if self.api_key and self.api_key_file:
            yield "api_key_file", "give either api_key or api_key_file, not both"
        if self.password and self.password_file:
            yield "password_file", "give either password or password_file, not both"
        yield from _credential_problems(
            self.api_key, self.api_key_file, self.username, self.password, self.password_file
        )

    def resolved_api_key(self) -> Secret | None:
        return self.api_key or _read_secret(self.api_key_file, "kibana.api_key_file")

    def resolved_password(self) -> Secret | None:
        return self.password or _read_secret(self.password_file, "kibana.password_file")


def timezone_problem(name: str) -> str | None:
    """Why ``name`` is not a timezone the worker can follow, or None."""
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    if name.upper() in ("UTC", "Z"):
        return None
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return f"unknown timezone {name!r}: give an IANA name such as UTC, Europe/Berlin or America/New_York"
    return None


@dataclass(frozen=True)
class AnalyticsConfig:
    interval: Duration = Duration(300.0)  # how often each model is evaluated
    window: Duration = Duration(3600.0)  # the span of logs one evaluation looks at
    false_alarms_per_week: float = 1.0  # per model, across all its detectors and features
    baselines_dir: Path | None = None  # default: <agent.data_dir>/baselines
    shard: str = "0/1"  # this worker takes models whose hash % n == i
    min_window_docs: int = 200  # smaller windows are merged with the preceding ones
    # Window ends follow this zone's wall clock (an IANA name): interval 1d + window 1d = local days
    timezone: str = "UTC"
    # A resolved alert back within this reopens in place (no new alert, no new message); an
    # incident whose alerts all resolved is said resolved once this has passed with none back.
    cooldown: Duration = Duration(86400.0)
    metrics: MetricsConfig = field(default_factory=MetricsConfig)  # the worker's /metrics, /livez, /readyz

    def validate(self) -> Problems:
        m = re.fullmatch(r"([0-9]+)/([0-9]+)", self.shard)
        if not m or int(m.group(2)) < 1 or int(m.group(1)) >= int(m.group(2)):
            yield "shard", "expected i/n with 0 <= i < n, e.g. 0/1 or 2/4"
        if self.false_alarms_per_week <= 0:
            yield "false_alarms_per_week", "must be positive"
        if self.interval <= 0 or self.window <= 0:
            yield "window", "interval and window must be positive"
        if (problem := timezone_problem(self.timezone)) is not None:
            yield "timezone", problem
        if self.cooldown < 0:
            yield "cooldown", "must be zero (no cooldown) or positive"


@dataclass(frozen=True)
class FeatureFloors:
    """Effect floors of one feature in place of the defaults: how large a change must be before
    it can alert, however significant (rates as shares: 0.05 is 5 points above the baseline)."""

    null: float | None = None  # missing values (default 0.01)
    unseen: float | None = None  # values never seen in training (default 0.005)
    oov: float | None = None  # texts with an out-of-vocabulary token (default 0.01)
    drift: float | None = None  # Jensen-Shannon distance of the distribution (default 0.1)

    def validate(self) -> Problems:
        for name in ("null", "unseen", "oov", "drift"):
            value = getattr(self, name)
            if value is not None and not 0.0 <= value <= 1.0:
                yield name, f"must be between 0 and 1, got {value}"


@dataclass(frozen=True)
class ModelConfig:
    features: Mapping[str, FeatureKind] = field(default_factory=lambda: MappingProxyType({}))
    outputs: Mapping[str, FeatureKind] = field(default_factory=lambda: MappingProxyType({}))
    categorical_closed: tuple[str, ...] = ()  # closed vocabularies: one unseen value is enough
    floors: Mapping[str, FeatureFloors] = field(default_factory=lambda: MappingProxyType({}))  # by feature

    def validate(self) -> Problems:
        if not self.features:  # kinds inferred from the baseline: nothing to check against
            return
        known = {*self.features, *self.outputs}
        for name in self.floors:
            if name.split(".", 1)[-1] not in known:
                yield f"floors.{name}", f"{name!r} is not one of the model's features or outputs"
        for i, name in enumerate(self.categorical_closed):
            kind = self.features.get(name)
            if kind is None:
                yield (
                    f"categorical_closed[{i}]",
                    f"{name!r} is not one of the model's features ({', '.join(self.features)}); "
                    "a closed vocabulary names a categorical feature",
                )
            elif kind != "categorical":
                yield (
                    f"categorical_closed[{i}]",
                    f"{name!r} is a {kind} feature; only categorical features have a closed vocabulary",
                )


@dataclass(frozen=True)
class Config:
    agent: AgentConfig = field(default_factory=AgentConfig)
    elasticsearch: ElasticsearchConfig | None = None
    kibana: KibanaConfig | None = None
    analytics: AnalyticsConfig = field(default_factory=AnalyticsConfig)
    models: Mapping[str, ModelConfig] = field(default_factory=lambda: MappingProxyType({}))
    source: Path | None = field(default=None, init=False)  # the file loaded from (not a YAML key)

    def validate(self) -> Problems:
        datasets: dict[str, str] = {}
        for name in self.models:
            if problem := model_name_problem(name):
                yield f"models.{name}", problem
            elif (other := datasets.setdefault(model_dataset(name), name)) != name:
                yield f"models.{name}", f"writes to the same data stream as model {other!r}; rename one"

    def model_config(self, model: str) -> ModelConfig | None:
        """The ``models`` entry of a model named as in the config or as its dataset part."""
        found = self.models.get(model)
        if found is None:
            dataset = model_dataset(model)
            found = next((m for name, m in self.models.items() if model_dataset(name) == dataset), None)
        return found

    def text_features(self, model: str) -> frozenset[str]:
        m = self.model_config(model)
        return frozenset(k for k, v in m.features.items() if v == "text") if m else frozenset()

    @property
    def baselines_dir(self) -> Path:
        return self.analytics.baselines_dir or DataDir(self.agent.data_dir).baselines


def parse_config(text: str, env: Mapping[str, str] | None = None, source: Path | None = None) -> Config:
    """Parse YAML text into a validated Config (raises ConfigError)."""
    import yaml  # here, not at import: a parse worker unpickles config values and reads no YAML

    try:
        raw, duplicates = load_yaml(text)
    except yaml.YAMLError as exc:
        raise ConfigError([("", yaml_problem(exc))]) from None
    if duplicates:
        raise ConfigError(duplicates)
    if isinstance(raw, Scalar):
        raw = raw.value
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError([("", "the config must be a YAML mapping with sections agent, elasticsearch, ...")])
    expanded, problems = expand_env(raw, os.environ if env is None else env)
    if problems:
        raise ConfigError(problems)
    cfg = build(Config, expanded)
    if source is not None:
        object.__setattr__(cfg, "source", source)
        # Relative paths are taken from the config file's folder, not the daemon's cwd.
        base = source.parent
        if not cfg.agent.data_dir.is_absolute():
            object.__setattr__(cfg.agent, "data_dir", (base / cfg.agent.data_dir).resolve())
        for inp in cfg.agent.inputs:
            absolute = tuple(p if os.path.isabs(p) else str(base / p) for p in inp.paths)
            object.__setattr__(inp, "paths", absolute)
        for section, key in _FILE_KEYS:
            obj = getattr(cfg, section)
            value = getattr(obj, key, None) if obj is not None else None
            if isinstance(value, Path) and not value.is_absolute():
                object.__setattr__(obj, key, (base / value).resolve())
    if problems := list(_file_problems(cfg)):
        raise ConfigError(problems)
    return cfg


# Keys naming files, as (section, key): relative values are taken from the config's folder.
_FILE_KEYS = (
    ("elasticsearch", "api_key_file"),
    ("elasticsearch", "password_file"),
    ("elasticsearch", "ca_certs"),
    ("kibana", "api_key_file"),
    ("kibana", "password_file"),
    ("kibana", "ca_certs"),
    ("analytics", "baselines_dir"),
)
_SECRET_FILE_KEYS = frozenset({"api_key_file", "password_file"})


def _file_problems(cfg: Config) -> Problems:
    """Files the config names must be readable now, not at the first request (a secret file that
    is missing would otherwise surface as a traceback deep in a command)."""
    for section, key in _FILE_KEYS:
        obj = getattr(cfg, section)
        value = getattr(obj, key, None) if obj is not None else None
        if not isinstance(value, Path) or key == "baselines_dir":
            continue
        problem = _file_problem(value, secret=key in _SECRET_FILE_KEYS)
        if problem:
            yield f"{section}.{key}", problem


def _file_problem(path: Path, secret: bool) -> str | None:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return f"file {path} does not exist; create it or correct the path"
    except IsADirectoryError:
        return f"{path} is a directory; give the path of a file"
    except OSError as exc:
        return f"cannot read {path}: {exc.strerror}; check its permissions for this user"
    if secret and not data.strip():
        return f"file {path} is empty; write the secret into it (one line)"
    return None


def yaml_problem(exc: yaml.YAMLError) -> str:
    """One line: where the YAML breaks and why (PyYAML's own message spans several lines)."""
    mark = getattr(exc, "problem_mark", None)
    where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
    what = ", ".join(
        str(part) for part in (getattr(exc, "context", None), getattr(exc, "problem", None)) if part
    )
    return (
        f"not valid YAML{where}: {what or exc}; check the indentation (spaces, not tabs) and quote "
        "values that contain ': ', '#', '{' or '['"
    )


def load_config(path: str | Path, env: Mapping[str, str] | None = None) -> Config:
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError([("", f"config file {p} does not exist")]) from None
    except UnicodeDecodeError:
        raise ConfigError([("", f"{p} is not a UTF-8 text file")]) from None
    except OSError as exc:
        raise ConfigError([("", f"cannot read {p}: {exc.strerror}")]) from None
    return parse_config(text, env, source=p.resolve())


def _read_secret(path: Path | None, key: str) -> Secret | None:
    """The secret in ``path`` (stripped). A file that vanished or became unreadable since the
    config was loaded is a ConfigError naming the key and the path, never a bare OSError."""
    if path is None:
        return None
    try:
        value = path.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        reason = getattr(exc, "strerror", None) or "not UTF-8 text"
        raise ConfigError([(key, f"cannot read {path}: {reason}")]) from None
    if not value:
        raise ConfigError([(key, f"file {path} is empty; write the secret into it (one line)")])
    return Secret(value)


__all__ = [
    "AgentConfig",
    "AnalyticsConfig",
    "BatchConfig",
    "ByteSize",
    "Config",
    "ConfigError",
    "Duration",
    "ElasticsearchConfig",
    "FeatureKind",
    "FieldPaths",
    "InputConfig",
    "KibanaConfig",
    "ModelConfig",
    "RedactConfig",
    "Secret",
    "SpoolConfig",
    "load_config",
    "parse_config",
]
