"""Turn one prediction log line into the document inferwatch indexes (the agent's hot path).

``Normalizer(input_config, models, namespace, redact, hash_key, host, agent_version)`` is built
once per input; ``normalizer(line, source, ingested) -> Event`` or raises ``Rejected(reason)``.
``normalizer.normalize_batch(batch, ingested)`` does the same for a whole ``LineBatch`` without
building a ``Source`` per line, and ``normalizer.normalize_at(line, fingerprint, path, offset,
ingested)`` is the per-line function itself. Everything that depends only on the config is
computed in ``__post_init__``; everything that depends only on the model name (dataset, index,
coercions, text features) is computed once per name and cached.

The document (docs/architecture.md, "Documents in Elasticsearch")::

    {"@timestamp": "2026-11-22T10:48:12.486Z",
     "event": {"ingested": <ingested>, "dataset": "inferwatch.<m>"},
     "data_stream": {"type": "logs", "dataset": "inferwatch.<m>", "namespace": <ns>},
     "host": {"name": <host>}, "agent": {"type": "inferwatch", "version": <agent_version>,
                                         "id": <agent_id>, "name": <agent_name>},  # each when set
     "log": {"file": {"path": <path>}, "offset": <offset>},
     "ml": {"model": {"name": <as in the line>, "version": <str, or the input's default, or "unknown">},
            "prediction": {"id": <str>, "latency_ms": <float>},   # each only when present
            "inputs": {...}, "outputs": {...},                      # as in the line, coerced
            "tokens": {<text feature>: [<tokens>]},                 # configured text inputs
            "invalid": ["inputs.age", ...]}}                        # values that failed coercion

Rules, in the order they run:

1. Parse with orjson. Reasons: ``invalid_utf8`` (the bytes are not UTF-8), ``invalid_json``,
   ``not_an_object`` (the line, or its inputs/outputs, is not a JSON object). A UTF-8 byte
   order mark at the start of a line is ignored.
2. Redaction (``RedactConfig.drop`` / ``hash``, see ``agent.redact``) before anything reads it.
3. Model name: the configured path, else the input's ``model``; neither -> ``missing_field``.
   ``<m>`` = the name lowercased, every character outside ``[a-z0-9_.]`` replaced by ``_``, at
   most 100 characters; dataset ``inferwatch.<m>``; index ``logs-inferwatch.<m>-<namespace>``.
   The model's config (``models``) is found by the name as written, else by ``<m>``.
4. Timestamp: ISO-8601 strings (``Z``, an offset, or naive = UTC; any precision, truncated to
   milliseconds), numeric strings and JSON numbers as epoch time, the unit decided by magnitude
   (below 1e11 seconds, below 1e14 milliseconds, below 1e17 microseconds, else nanoseconds).
   Unparseable -> ``bad_timestamp``. No timestamp (absent or null): the document gets the ingest
   time and ``counts["timestamp_missing"]`` grows, unless ``require_timestamp`` is set
   (then ``missing_field``).
5. Version, prediction id: strings; other scalars are written as JSON (``2`` -> ``"2"``); an
   integer id keeps its digits at any size (``2**64`` and more, which orjson reads as a float). A
   latency that is not a number (or numeric string) is left out and listed as
   ``prediction.latency_ms`` in ``ml.invalid``.
6. Kinds of ``models.<name>.features`` (inputs) and ``.outputs``, keyed by dotted path
   (``user.age`` finds ``{"user": {"age": ..}}`` or a literal ``"user.age"`` key): numeric ->
   float (numeric strings too; anything else becomes null and ``inputs.<f>`` is listed in
   ``ml.invalid``); categorical -> string by ``inferwatch.core.contract.category_str`` (objects and arrays
   invalid); text -> string, plus ``ml.tokens.<f>`` = ``inferwatch.core.tokenize.tokenize(value)``
   for input features. Null stays null and absent stays absent. Features the config does not
   name keep their JSON types.
7. Document id (``InputConfig.document_id``, by ``inferwatch.core.contract.document_id``):
   ``offset`` -> the id of ``"<file fingerprint>:<offset>"``; ``prediction_id`` -> the id of
   ``"<m>:<prediction id>"``, falling back to the offset form when the line has no id.

Other fields of the line are not shipped: the document holds what the contract names.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime, timedelta
from types import MappingProxyType
from typing import Any

import orjson

from inferwatch.agent.bulkbody import ACTION_TAIL, action_head
from inferwatch.agent.fastpath import LINES_PYTHON, FastPath
from inferwatch.agent.model import Event, LineBatch, Rejected, Source
from inferwatch.agent.redact import Redactor
from inferwatch.core.config import FeatureKind, InputConfig, ModelConfig, RedactConfig
from inferwatch.core.contract import category_str, data_stream_of_dataset, document_id_bytes, model_dataset
from inferwatch.core.tokenize import tokenize

JsonObject = dict[str, Any]
_Item = tuple["_ModelInfo", bytes, bytes]  # (model info, document id, bulk item)

MODEL_CACHE_SIZE = 1024  # distinct model names remembered; a flood of names only costs CPU
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_INVALID: Any = object()  # what a coercion returns for a value of the wrong kind

_loads = orjson.loads
_dumps = orjson.dumps
_fromisoformat = datetime.fromisoformat


@dataclass(frozen=True, slots=True)
class RejectedLine:
    """A line of a batch that can never become a document (for the dead letter)."""

    offset: int
    line: bytes
    error: Rejected


def format_timestamp(dt: datetime) -> str:
    """``YYYY-MM-DDTHH:MM:SS.mmmZ`` of an aware datetime (naive is taken as UTC)."""
    if dt.tzinfo is not None:
        dt = dt.astimezone(UTC)
    return (
        f"{dt.year:04d}-{dt.month:02d}-{dt.day:02d}T{dt.hour:02d}:{dt.minute:02d}:{dt.second:02d}"
        f".{dt.microsecond // 1000:03d}Z"
    )


def format_epoch(t: float) -> str:
    """``format_timestamp`` of epoch seconds (``event.ingested``, a dead letter's ``@timestamp``)."""
    return format_timestamp(datetime.fromtimestamp(t, UTC))


def parse_timestamp(value: Any) -> str:
    """The canonical UTC form of an ISO-8601 string or an epoch number (rule 4 above); raises
    ``ValueError`` when ``value`` is neither."""
    if type(value) is str:
        if len(value) == 24 and value[23] == "Z" and value[19] == "." and value[10] == "T":
            _fromisoformat(value)  # validates; the string already has the output form
            return value
        try:
            parsed = _fromisoformat(value)
        except ValueError:
            try:
                number: float = float(value)
            except ValueError:
                raise ValueError(f"not an ISO-8601 time or epoch number: {value[:64]!r}") from None
            return _from_epoch(number)
        try:
            return format_timestamp(parsed)
        except OverflowError:  # an offset that moves the time out of the years 1-9999
            raise ValueError(f"time out of range: {value[:64]!r}") from None
    if type(value) is int or type(value) is float:
        return _from_epoch(value)
    raise ValueError(f"a timestamp must be a string or a number, not {_json_type(value)}")


def _from_epoch(value: float) -> str:
    if not math.isfinite(value):
        raise ValueError(f"not a finite epoch time: {value}")
    magnitude = abs(value)
    if type(value) is int:
        if magnitude < 10**11:
            ms = value * 1000
        elif magnitude < 10**14:
            ms = value
        elif magnitude < 10**17:
            ms = value // 1000
        else:
            ms = value // 1_000_000
    elif magnitude < 1e11:
        ms = round(value * 1000)
    elif magnitude < 1e14:
        ms = round(value)
    elif magnitude < 1e17:
        ms = round(value / 1000)
    else:
        ms = round(value / 1e6)
    try:
        return format_timestamp(_EPOCH + timedelta(milliseconds=ms))
    except OverflowError:
        raise ValueError(f"epoch time out of range: {value}") from None


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"


# ---- coercions: (value) -> coerced value or _INVALID; called only when the type differs ----


def _to_float(value: Any) -> Any:
    if type(value) is int:
        return float(value)
    if type(value) is str:
        try:
            number = float(value)
        except ValueError:
            return _INVALID
        return number if math.isfinite(number) else _INVALID
    return _INVALID  # bool, object, array


def _to_str(value: Any) -> Any:
    if type(value) is bool or type(value) is int or type(value) is float:
        return category_str(value)
    return _INVALID  # object, array


def _set(obj: JsonObject, key: str, value: Any, label: str, invalid: list[str]) -> None:
    if value is _INVALID:
        obj[key] = None
        invalid.append(label)
    else:
        obj[key] = value


@dataclass(frozen=True, slots=True)
class _Kinds:
    """The configured features of one object level (inputs, outputs, or an object inside them)
    as a tree, so the per-line loops are flat: one ``get`` and one type test per feature, no
    call unless a value has the wrong type.

    A dotted feature ``user.age`` sits under ``children["user"]``, and also in this level's
    lists under the literal key ``"user.age"`` (a line may write it either way)."""

    numeric: tuple[tuple[str, str], ...]  # (key, label for ml.invalid)
    strings: tuple[tuple[str, str], ...]  # categorical and text
    children: tuple[tuple[str, _Kinds], ...]
    text: tuple[tuple[str, tuple[str, ...]], ...]  # (dotted key, its parts): ml.tokens (inputs only)

    @classmethod
    def build(cls, kinds: Mapping[str, FeatureKind], side: str, tokens: bool) -> _Kinds | None:
        if not kinds:
            return None
        tree = cls._level({tuple(k.split(".")): kind for k, kind in kinds.items()}, (), side)
        text = tuple((k, tuple(k.split("."))) for k, kind in kinds.items() if tokens and kind == "text")
        return cls(tree.numeric, tree.strings, tree.children, text)

    @classmethod
    def _level(
        cls, kinds: Mapping[tuple[str, ...], FeatureKind], prefix: tuple[str, ...], side: str
    ) -> _Kinds:
        here = {parts[len(prefix) :]: kind for parts, kind in kinds.items() if parts[: len(prefix)] == prefix}
        numeric = tuple(
            (".".join(p), ".".join((side, *prefix, *p))) for p, k in here.items() if k == "numeric"
        )
        strings = tuple(
            (".".join(p), ".".join((side, *prefix, *p))) for p, k in here.items() if k != "numeric"
        )
        heads = dict.fromkeys(p[0] for p in here if len(p) > 1)
        children = tuple((head, cls._level(kinds, (*prefix, head), side)) for head in heads)
        return cls(numeric, strings, children, ())

    def apply(self, obj: JsonObject, invalid: list[str]) -> None:
        """Coerce the features of ``obj`` in place (the normalizer owns the parsed line)."""
        for key, label in self.numeric:
            value = obj.get(key)
            if type(value) is not float and value is not None:
                if type(value) is int:
                    obj[key] = float(value)
                else:
                    _set(obj, key, _to_float(value), label, invalid)
        for key, label in self.strings:
            value = obj.get(key)
            if type(value) is not str and value is not None:
                _set(obj, key, _to_str(value), label, invalid)
        for key, child in self.children:
            inner = obj.get(key)
            if type(inner) is dict:
                child.apply(inner, invalid)

    def native(self) -> tuple[list[str], list[str], list[tuple[str, Any]], list[tuple[str, list[str]]]]:
        """This tree as ``agent.fastpath``'s native module takes it: (numeric keys, string keys,
        children, text features)."""
        return (
            [key for key, _ in self.numeric],
            [key for key, _ in self.strings],
            [(key, child.native()) for key, child in self.children],
            [(key, list(parts)) for key, parts in self.text],
        )

    def tokens(self, obj: JsonObject) -> dict[str, list[str]]:
        """``ml.tokens``: the tokens of each text feature that holds a string."""
        found = {}
        for key, parts in self.text:
            text: Any = obj.get(key)
            if text is None and len(parts) > 1:
                text = obj
                for part in parts:
                    text = text.get(part) if type(text) is dict else None
            if type(text) is str:
                found[key] = tokenize(text)
        return found


@dataclass(frozen=True, slots=True)
class _ModelInfo:
    """Everything derived from one model name, computed once and cached."""

    name: str
    dataset: str
    index: str
    id_prefix: str  # "<m>:" for prediction-id document ids
    action: bytes  # the bulk action line of the model's documents up to the id (bulkbody.action_head)
    middle: bytes  # the document from the dataset to the file path's value (see _middle)
    inputs: _Kinds | None
    outputs: _Kinds | None


def _dig(obj: JsonObject, path: tuple[str, tuple[str, ...]]) -> Any:
    """The value at a dotted path: a literal dotted key first, then nested objects."""
    dotted, parts = path
    value: Any = obj.get(dotted)
    if value is not None:
        return value
    value = obj
    for part in parts:
        if type(value) is not dict:
            return None
        value = value.get(part)
    return value


def _getter(path: str) -> tuple[Callable[[JsonObject, Any], Any], Any]:
    """``(get, arg)`` with ``get(line, arg)`` the value at ``path``: plain ``dict.get`` for a
    top-level key (no Python-level call on the hot path), ``_dig`` for a dotted path."""
    if "." not in path:
        return dict.get, path
    return _dig, (path, tuple(path.split(".")))


# The serialized document between ``@timestamp`` and the value of ``log.offset`` is
# MIDDLE_HEAD, the ingest time, the model's ``_ModelInfo.middle``, the file path, MIDDLE_TAIL
# (``_middle``): the model's part is serialized once per model, the rest once per batch.
MIDDLE_HEAD = b',"event":{"ingested":'
MIDDLE_TAIL = b'},"offset":'


def _model_middle(dataset: str, namespace: str, host: JsonObject, agent: JsonObject) -> bytes:
    """``_ModelInfo.middle``: ``event.dataset`` to ``log.file.path``'s key."""
    data_stream = {"type": "logs", "dataset": dataset, "namespace": namespace}
    return b"".join(
        (
            b',"dataset":',
            _dumps(dataset),
            b'},"data_stream":',
            _dumps(data_stream),
            b',"host":',
            _dumps(host),
            b',"agent":',
            _dumps(agent),
            b',"log":{"file":{"path":',
        )
    )


def _middle(info: _ModelInfo, path: str, ingested: str) -> bytes:
    return b"".join((MIDDLE_HEAD, _dumps(ingested), info.middle, _dumps(path), MIDDLE_TAIL))


def _scalar_str(value: Any) -> str:
    """A version or prediction id that is not a string, written as JSON."""
    return _dumps(value, option=orjson.OPT_SORT_KEYS).decode()


def _exact_int(line: bytes, get: Callable[[JsonObject, Any], Any], arg: Any) -> str | None:
    """The digits of the integer at ``get(obj, arg)`` in ``line`` parsed by the standard library,
    which keeps an integer's digits at any size where orjson gives a float beyond 64 bits (two
    128-bit ids would become one float, one document id); None when the value is no integer.
    Called only for a value orjson gave as a float: rare."""
    try:
        text = line.decode("utf-8")
        value = get(json.loads(text[1:] if text.startswith("\ufeff") else text), arg)
    except (ValueError, RecursionError):  # orjson took the line: only nesting depth differs
        return None
    return str(value) if type(value) is int else None


def _parse_error(line: bytes) -> Any:
    """Called when orjson refused the line: return the object if only a BOM was in the way,
    else raise the right ``Rejected``."""
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise Rejected("invalid_utf8", f"byte {exc.start}: {exc.reason}") from None
    try:
        return _loads(text[1:] if text.startswith("\ufeff") else text)
    except orjson.JSONDecodeError as exc:
        raise Rejected("invalid_json", str(exc)) from None


@dataclass(frozen=True, eq=False)
class Normalizer:
    """Line -> ``Event`` for one input (see the module docstring for every rule).

    ``namespace`` is the agent's; the input's own ``namespace`` wins when set (either is
    lowercased: index names must be). ``hash_key`` is the HMAC key for ``redact.hash`` (read
    from the environment by the caller). ``require_timestamp`` turns a missing timestamp into
    ``missing_field`` instead of the ingest time.

    ``counts`` counts what was repaired rather than rejected (``timestamp_missing``: lines that
    got the ingest time; ``invalid_value``: values nulled or left out, see ``ml.invalid``), and
    the lines of ``bulk_items`` by the normalizer that took them (``fastpath.LINES_NATIVE``,
    ``LINES_PYTHON``); rejects are counted by whoever catches ``Rejected``. Identity equality:
    a normalizer holds caches and counters.

    Thread-safety: one normalizer may be called from several threads (its caches are only
    ever replaced or filled whole), but ``counts`` is then approximate.
    """

    input_config: InputConfig
    models: Mapping[str, ModelConfig] = field(default_factory=lambda: MappingProxyType({}))
    namespace: str = "default"
    redact: RedactConfig = field(default_factory=RedactConfig)
    hash_key: bytes | None = None
    host: str = ""
    agent_version: str = ""
    require_timestamp: bool = False
    agent_id: str = ""  # ECS agent.id and agent.name (agent.identity); left out when empty
    agent_name: str = ""
    #: Use the native fast path (``agent.fastpath``) when it is installed. It writes the same
    #: bytes; False is for comparing the two.
    accelerate: bool = True
    counts: Counter[str] = field(default_factory=Counter, init=False, compare=False, repr=False)
    #: ``normalize_at(line, fingerprint, path, offset, ingested)``: the per-line function itself,
    #: for callers that would otherwise build a ``Source`` per line only to have it taken apart.
    normalize_at: Callable[[bytes, str, str, int, str], Event] = field(init=False, compare=False, repr=False)
    _cache: dict[Any, _ModelInfo] = field(default_factory=dict, init=False, compare=False, repr=False)
    _item: Callable[[bytes, str, str, int, str], _Item] = field(init=False, compare=False, repr=False)
    _fast: FastPath | None = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        item = self._build()
        body_start = len(ACTION_TAIL)

        def normalize_at(line: bytes, fingerprint: str, path: str, offset: int, ingested: str) -> Event:
            info, doc_id, bulk_item = item(line, fingerprint, path, offset, ingested)
            start = len(info.action) + len(doc_id) + body_start
            return Event(doc_id.decode(), info.index, bulk_item[start:-1])

        object.__setattr__(self, "_item", item)
        object.__setattr__(self, "normalize_at", normalize_at)
        object.__setattr__(self, "_fast", FastPath.build(self, self._cache) if self.accelerate else None)

    @property
    def fast_path(self) -> FastPath | None:
        """The native fast path ``bulk_items`` uses, None when there is none (``agent.fastpath``)."""
        return self._fast

    def __reduce__(self) -> tuple[type[Normalizer], tuple[Any, ...]]:
        """Pickled as its construction values: a parse worker (``agent.parsepool``) unpickles the
        very same normalizer, its caches and per-line function built anew."""
        return Normalizer, tuple(getattr(self, f.name) for f in fields(self) if f.init)

    @property
    def redactor(self) -> Redactor | None:
        """This input's redaction (``redact`` with ``hash_key``), None when it redacts nothing:
        what the dead letters apply to its rejected lines."""
        redactor = Redactor(self.redact.drop, self.redact.hash, self.hash_key)
        return redactor if redactor.active else None

    def __call__(self, line: bytes, source: Source, ingested: str) -> Event:
        """The document of ``line``; raises ``Rejected(reason, detail)``."""
        return self.normalize_at(line, source.file_id.fingerprint, source.path, source.offset, ingested)

    def bulk_items(self, batch: LineBatch, ingested: str) -> tuple[list[bytes], list[RejectedLine]]:
        """Every line of ``batch`` as a ready bulk item (the ``create`` action line and the
        document, each ending with a newline: exactly what ``bulkbody.raw_body`` writes for its
        event), in line order, and the lines rejected. The read loop's fast path: no ``Event``
        per line, and the batch's body is one join of these."""
        if self._fast is not None:
            return self._fast.bulk_items(batch, ingested, self._item)
        self.counts[LINES_PYTHON] += len(batch.lines)
        item = self._item
        fingerprint = batch.file_id.fingerprint
        path = batch.path
        items: list[bytes] = []
        rejects: list[RejectedLine] = []
        append = items.append
        for line, offset in zip(batch.lines, batch.offsets, strict=True):
            try:
                append(item(line, fingerprint, path, offset, ingested)[2])
            except Rejected as exc:
                rejects.append(RejectedLine(offset, line, exc))
        return items, rejects

    def normalize_batch(self, batch: LineBatch, ingested: str) -> tuple[list[Event], list[RejectedLine]]:
        """Every line of ``batch``: the events in line order, and the lines rejected."""
        normalize = self.normalize_at
        fingerprint = batch.file_id.fingerprint
        path = batch.path
        events: list[Event] = []
        rejects: list[RejectedLine] = []
        append = events.append
        for line, offset in zip(batch.lines, batch.offsets, strict=True):
            try:
                append(normalize(line, fingerprint, path, offset, ingested))
            except Rejected as exc:
                rejects.append(RejectedLine(offset, line, exc))
        return events, rejects

    # ---- building the per-line function --------------------------------------------------

    def model_info(self, name: str) -> _ModelInfo:
        """The cached derivations of one model name."""
        info = self._cache.get(name)
        if info is None:
            if len(self._cache) >= MODEL_CACHE_SIZE:
                self._cache.clear()
            info = self._cache[name] = self._derive(name)
        return info

    def _derive(self, name: str) -> _ModelInfo:
        m = model_dataset(name)
        dataset = f"inferwatch.{m}"
        namespace = (self.input_config.namespace or self.namespace).lower()  # index names are lowercase
        config = self.models.get(name) or self.models.get(m) or ModelConfig()
        agent = {"type": "inferwatch", "version": self.agent_version}
        agent.update((k, v) for k, v in (("id", self.agent_id), ("name", self.agent_name)) if v)
        return _ModelInfo(
            name=name,
            dataset=dataset,
            index=data_stream_of_dataset(dataset, namespace),
            id_prefix=f"{m}:",
            action=action_head(data_stream_of_dataset(dataset, namespace)),
            middle=_model_middle(dataset, namespace, {"name": self.host}, agent),
            inputs=_Kinds.build(config.features, "inputs", tokens=True),
            outputs=_Kinds.build(config.outputs, "outputs", tokens=False),
        )

    def _build(self) -> Callable[[bytes, str, str, int, str], tuple[_ModelInfo, bytes, bytes]]:
        """The per-line function ``(line, fingerprint, path, offset, ingested) -> (model info,
        document id, bulk item)``, the item being the action line and the document, each ending
        with a newline: a closure over everything precomputed, so the hot path reads locals and
        has no branches on the configuration."""
        fields = self.input_config.fields
        get_ts, ts_arg = _getter(fields.timestamp)
        get_model, model_arg = _getter(fields.model)
        get_version, version_arg = _getter(fields.version)
        get_pid, pid_arg = _getter(fields.prediction_id)
        get_inputs, inputs_arg = _getter(fields.inputs)
        get_outputs, outputs_arg = _getter(fields.outputs)
        get_latency, latency_arg = _getter(fields.latency)
        default_model = self.input_config.model
        default_version = self.input_config.version or "unknown"
        by_prediction_id = self.input_config.document_id == "prediction_id"
        require_timestamp = self.require_timestamp
        redactor = Redactor(self.redact.drop, self.redact.hash, self.hash_key)
        redacting = redactor.active
        pid_hashed = fields.prediction_id in self.redact.hash
        counts = self.counts
        cache = self._cache
        model_info = self.model_info
        last_middle: list[tuple[Any, str, str, bytes]] = [(None, "", "", b"")]

        def resolve_model(value: Any) -> _ModelInfo:
            if value is None or value == "":
                if default_model is None:
                    raise Rejected("missing_field", f"model (no {fields.model!r} in the line, no default)")
                info = cache[value] = model_info(default_model)
                return info
            if type(value) is bool or type(value) not in (str, int, float):
                raise Rejected("missing_field", f"model: {fields.model!r} is {_json_type(value)}")
            return model_info(value if type(value) is str else _scalar_str(value))

        def item(line: bytes, fingerprint: str, path: str, offset: int, ingested: str) -> _Item:
            try:
                obj = _loads(line)
            except orjson.JSONDecodeError:
                obj = _parse_error(line)
            if type(obj) is not dict:
                raise Rejected("not_an_object", f"the line is {_json_type(obj)}")
            exact_pid = None
            if redacting:
                if pid_hashed and type(get_pid(obj, pid_arg)) is float:
                    exact = _exact_int(line, get_pid, pid_arg)
                    exact_pid = None if exact is None else redactor.hash_value(exact)
                obj = redactor(obj)

            name = get_model(obj, model_arg)
            try:
                info = cache.get(name)
            except TypeError:  # an object or array where the name should be
                info = None
            if info is None:
                info = resolve_model(name)

            ts = get_ts(obj, ts_arg)
            if ts is not None:
                try:
                    ts = parse_timestamp(ts)
                except ValueError as exc:
                    raise Rejected("bad_timestamp", str(exc)) from None
            elif require_timestamp:
                raise Rejected("missing_field", f"timestamp ({fields.timestamp!r} not in the line)")
            # else: the ingest time, counted at the end, once the line is sure to be a document

            version = get_version(obj, version_arg)
            if version is None:
                version = default_version
            elif type(version) is not str:
                version = _scalar_str(version)
            ml: JsonObject = {"model": {"name": info.name, "version": version}}

            invalid: list[str] = []
            prediction: JsonObject = {}
            pid = get_pid(obj, pid_arg)
            if pid is not None:
                if exact_pid is not None:
                    pid = exact_pid
                elif type(pid) is float:  # maybe an integer over 64 bits that orjson made a float
                    pid = _exact_int(line, get_pid, pid_arg) or pid
                if type(pid) is not str:
                    pid = _scalar_str(pid)
                prediction["id"] = pid
            latency = get_latency(obj, latency_arg)
            if latency is not None:
                if type(latency) is not float:
                    latency = _to_float(latency)
                if latency is _INVALID:
                    invalid.append("prediction.latency_ms")
                else:
                    prediction["latency_ms"] = latency
            if prediction:
                ml["prediction"] = prediction

            inputs = get_inputs(obj, inputs_arg)
            if inputs is not None:
                if type(inputs) is not dict:
                    raise Rejected("not_an_object", f"inputs: {fields.inputs!r} is {_json_type(inputs)}")
                ml["inputs"] = inputs
                if info.inputs is not None:
                    info.inputs.apply(inputs, invalid)
                    if info.inputs.text:
                        tokens = info.inputs.tokens(inputs)
                        if tokens:
                            ml["tokens"] = tokens
            outputs = get_outputs(obj, outputs_arg)
            if outputs is not None:
                if type(outputs) is not dict:
                    raise Rejected("not_an_object", f"outputs: {fields.outputs!r} is {_json_type(outputs)}")
                if info.outputs is not None:
                    info.outputs.apply(outputs, invalid)
                ml["outputs"] = outputs
            if invalid:
                counts["invalid_value"] += len(invalid)
                ml["invalid"] = invalid

            if by_prediction_id and pid is not None:
                doc_id = document_id_bytes((info.id_prefix + pid).encode())
            else:
                doc_id = document_id_bytes(f"{fingerprint}:{offset}".encode())
            # The document is spliced: everything but the timestamp, the offset and "ml" is the
            # same for a model, a file and an ingest time, so it is serialized once per change.
            memo = last_middle[0]
            if memo[0] is info and memo[1] == path and memo[2] == ingested:
                middle = memo[3]
            else:
                middle = _middle(info, path, ingested)
                last_middle[0] = (info, path, ingested, middle)
            try:
                # The id is base64url: as a JSON string it needs no escaping.
                bulk_item = b'%s%s%s{"@timestamp":%s%s%d},"ml":%s}\n' % (
                    info.action,
                    doc_id,
                    ACTION_TAIL,
                    _dumps(ts or ingested),
                    middle,
                    offset,
                    _dumps(ml),
                )
            except orjson.JSONEncodeError as exc:  # nesting deeper than orjson writes
                raise Rejected("invalid_json", f"cannot serialize: {exc}") from None
            if ts is None:
                counts["timestamp_missing"] += 1
            return info, doc_id, bulk_item

        return item


__all__ = [
    "MODEL_CACHE_SIZE",
    "Normalizer",
    "RejectedLine",
    "format_timestamp",
    "parse_timestamp",
]
