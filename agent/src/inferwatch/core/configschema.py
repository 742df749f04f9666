"""A small typed loader: plain data (from YAML) -> frozen dataclasses, refusing unknown keys.

Every error names the key path (``agent.inputs[0].paths``) and the reason, and all errors of a
file are reported at once. Supported field types: str, int, float, bool, Path, Secret, Duration,
ByteSize, Literal[...], X | None, tuple[X, ...], Mapping[str, X] and nested dataclasses.
"""

from __future__ import annotations

import dataclasses
import difflib
import re
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal, TypeVar, get_args, get_origin

from inferwatch.core.configyaml import Scalar

T = TypeVar("T")


class ConfigError(Exception):
    """The config was refused; ``problems`` holds one ``(path, reason)`` per fault."""

    def __init__(self, problems: list[tuple[str, str]]) -> None:
        self.problems = problems
        super().__init__("; ".join(f"{p}: {r}" if p else r for p, r in problems))

    def render(self) -> str:
        """Every problem on its own line, key path first; a problem of the whole file (``path``
        empty: unreadable, not YAML) without a path."""
        lines = ["invalid config:"]
        lines += [f"  {path}: {reason}" if path else f"  {reason}" for path, reason in self.problems]
        if any("unknown key" in reason for _, reason in self.problems):
            lines.append("  (inferwatch.example.yml lists every key with its default and a comment)")
        return "\n".join(lines)


class Secret:
    """A credential. Its repr and str never show the value; call ``reveal()`` at the point of use."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


class Duration(float):
    """Seconds, written as a number or with a unit: ``500ms``, ``10s``, ``5m``, ``1h``, ``7d``."""

    _UNITS: typing.ClassVar[dict[str, float]] = {
        "ms": 0.001,
        "s": 1.0,
        "m": 60.0,
        "h": 3600.0,
        "d": 86400.0,
        "w": 604800.0,
    }

    @classmethod
    def parse(cls, raw: object) -> Duration:
        if isinstance(raw, bool):
            raise ValueError("expected a duration such as 30s, 5m or 1h")
        if isinstance(raw, int | float):
            return cls(float(raw))
        if isinstance(raw, str):
            m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*(ms|s|m|h|d|w)?\s*", raw)
            if m:
                return cls(float(m.group(1)) * cls._UNITS[m.group(2) or "s"])
        raise ValueError(f"expected a duration such as 30s, 5m or 1h, got {raw!r}")


class ByteSize(int):
    """Bytes, written as a number or with a unit: ``512KiB``, ``16MiB``, ``1GiB`` (also KB/MB/GB)."""

    _UNITS: typing.ClassVar[dict[str, int]] = {
        "": 1,
        "b": 1,
        "kb": 1000,
        "mb": 1000**2,
        "gb": 1000**3,
        "kib": 1024,
        "mib": 1024**2,
        "gib": 1024**3,
        "k": 1024,
        "m": 1024**2,
        "g": 1024**3,
    }

    @classmethod
    def parse(cls, raw: object) -> ByteSize:
        if isinstance(raw, bool):
            raise ValueError("expected a size such as 64MiB")
        if isinstance(raw, int):
            return cls(raw)
        if isinstance(raw, str):
            m = re.fullmatch(r"\s*([0-9]+(?:\.[0-9]+)?)\s*([a-zA-Z]*)\s*", raw)
            if m and m.group(2).lower() in cls._UNITS:
                return cls(int(float(m.group(1)) * cls._UNITS[m.group(2).lower()]))
        raise ValueError(f"expected a size such as 64MiB or 1GiB, got {raw!r}")


_ENV_RE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def expand_env(data: Any, env: Mapping[str, str], path: str = "") -> tuple[Any, list[tuple[str, str]]]:
    """Replace ``${NAME}`` and ``${NAME:-default}`` in every string; unknown names are errors. A
    string that changed becomes a ``Scalar`` typed by YAML's rules for plain scalars."""
    problems: list[tuple[str, str]] = []

    def walk(node: Any, at: str) -> Any:
        if isinstance(node, str):

            def sub(m: re.Match[str]) -> str:
                name, default = m.group(1), m.group(2)
                if name in env:
                    return env[name]
                if default is not None:
                    return default
                problems.append(
                    (
                        at,
                        f"environment variable {name} is not set; export it, or give a default "
                        f"with ${{{name}:-value}}",
                    )
                )
                return ""

            expanded = _ENV_RE.sub(sub, node)
            if expanded == node:
                return node
            # Expand first, then type: the expanded text is read as a plain YAML scalar, so
            # ``max_docs: ${MAXDOCS:-500}`` is the integer 500 where a number is expected (and
            # the text "500" where a string is).
            return Scalar.typed(expanded)
        if isinstance(node, dict):
            return {k: walk(v, f"{at}.{k}" if at else str(k)) for k, v in node.items()}
        if isinstance(node, list):
            return [walk(v, f"{at}[{i}]") for i, v in enumerate(node)]
        return node

    return walk(data, path), problems


def build(cls: type[T], data: Any, path: str = "") -> T:
    """Build dataclass ``cls`` from ``data`` or raise ConfigError listing every problem."""
    problems: list[tuple[str, str]] = []
    result = _convert(cls, data, path, problems)
    if problems:
        raise ConfigError(problems)
    return typing.cast(T, result)


_MISSING = object()


def _convert(tp: Any, value: Any, path: str, problems: list[tuple[str, str]]) -> Any:
    origin = get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in get_args(tp) if a is not type(None)]
        if _typed(value) is None:
            return None
        return _convert(args[0], value, path, problems)
    if origin is tuple and isinstance(value, str) and _typed(value) is not None:
        value = [value]  # one string where a list is expected: a list of one
    value = _text(value) if tp in (str, Secret, Path) else _typed(value)
    if origin is Literal:
        allowed = get_args(tp)
        if value not in allowed:
            problems.append((path, f"must be one of {', '.join(map(repr, allowed))}, got {value!r}"))
        return value
    if origin is tuple:
        (item_tp, _ellipsis) = get_args(tp)
        if not isinstance(value, list):
            problems.append((path, f"expected a list, got {type(value).__name__}"))
            return ()
        return tuple(_convert(item_tp, v, f"{path}[{i}]", problems) for i, v in enumerate(value))
    if origin in (Mapping, dict) or tp is Mapping:
        _key_tp, val_tp = get_args(tp)
        if value is None:
            return {}
        if not isinstance(value, dict):
            problems.append((path, f"expected a mapping, got {type(value).__name__}"))
            return {}
        return types.MappingProxyType(
            {str(k): _convert(val_tp, v, f"{path}.{k}", problems) for k, v in value.items()}
        )
    if dataclasses.is_dataclass(tp) and isinstance(tp, type):
        return _convert_dataclass(tp, value, path, problems)
    if tp in (Duration, ByteSize):
        try:
            return tp.parse(value)
        except ValueError as exc:
            problems.append((path, str(exc)))
            return tp(0)
    if tp is Secret:
        if not isinstance(value, str) or not value:
            problems.append((path, "expected a non-empty string (use ${ENV_VAR} for secrets)"))
            return Secret("")
        return Secret(value)
    if tp is Path:
        if not isinstance(value, str) or not value:
            problems.append((path, "expected a path"))
            return Path(".")
        return Path(value).expanduser()
    if tp is bool:
        if not isinstance(value, bool):
            problems.append((path, f"expected true or false, got {value!r}"))
        return bool(value)
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            problems.append((path, f"expected an integer, got {value!r}"))
            return 0
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            problems.append((path, f"expected a number, got {value!r}"))
            return 0.0
        return float(value)
    if tp is str:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return str(value)  # plain data (not from load_yaml): the number's own text
        if value is None:
            problems.append((path, "is empty; give a value (or remove the key for its default)"))
            return ""
        if not isinstance(value, str):
            problems.append((path, f"expected a string, got {type(value).__name__}"))
            return ""
        return value
    raise TypeError(f"unsupported config type {tp!r} at {path}")


def _typed(value: Any) -> Any:
    """What YAML makes of ``value`` (a ``Scalar``'s value; anything else as it is)."""
    return value.value if isinstance(value, Scalar) else value


def _text(value: Any) -> Any:
    """A scalar as written, where a string is expected: ``version: 1.10`` is ``"1.10"``, not the
    float 1.1 turned back into ``"1.1"``. Null stays None; non-scalars stay as they are."""
    if isinstance(value, Scalar):
        return None if value.value is None else str(value)
    return value


def _convert_dataclass(cls: type, value: Any, path: str, problems: list[tuple[str, str]]) -> Any:
    if value is None:
        value = {}
    if not isinstance(value, dict):
        problems.append((path, f"expected a mapping, got {type(value).__name__}"))
        value = {}
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    for key in value:
        if key not in fields:
            problems.append((_join(path, str(key)), unknown_key_reason(str(key), fields)))
    kwargs: dict[str, Any] = {}
    before = len(problems)
    for name, field in fields.items():
        sub = _join(path, name)
        if name in value:
            kwargs[name] = _convert(hints[name], value[name], sub, problems)
        elif field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING:
            tp = hints[name]
            if dataclasses.is_dataclass(tp):
                kwargs[name] = _convert(tp, {}, sub, problems)
            else:
                problems.append((sub, "required key is missing"))
                return None
    try:
        obj = cls(**kwargs)
    except (TypeError, ValueError) as exc:
        problems.append((path, str(exc)))
        return None
    check = getattr(obj, "validate", None)
    if callable(check) and len(problems) == before:  # cross-field checks only on well-typed values
        for sub, reason in check():
            problems.append((_join(path, sub) if sub else path, reason))
    return obj


def unknown_key_reason(key: str, known: typing.Iterable[str]) -> str:
    """``unknown key``, the likely intended key when one is close, and the known keys."""
    names = sorted(known)
    close = difflib.get_close_matches(key, names, n=1, cutoff=0.6)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    return f"unknown key{hint} (known keys: {', '.join(names)})"


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else str(key)
