"""Remove or pseudonymize fields of a prediction log line before it leaves the host.

``Redactor(drop, hash, key)`` is built once per input (paths split and validated in
``__init__``); calling it on a parsed line returns the line with every dropped path removed and
every hashed path replaced by ``HMAC-SHA256(key, value)`` as 64 lowercase hex digits. It runs
before anything else reads the line, so a redacted value never reaches a document, the spool,
the dead letter's ``document`` or the output.

Rules (documented because they are part of what the operator configures):

- A path is dotted (``inputs.email``) and walks nested JSON objects from the line's top level.
  A path whose parent is missing or not an object is simply not there: nothing happens.
- Drops run before hashes, so hashing below a dropped path is a no-op.
- What is hashed: a string's UTF-8 bytes; any other value's compact JSON (``41`` hashes ``b"41"``,
  ``true`` hashes ``b"true"``, an object hashes its JSON with sorted keys). ``null`` stays ``null``
  (there is nothing to hide, and "absent/null" keeps its meaning for the detectors).
- The call is pure: containers on a redacted path are copied (a few small dicts), the input
  object is not modified.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

import orjson

JsonObject = dict[str, Any]
_Path = tuple[str, ...]


class Redactor:
    """Drop and hash configured dotted paths of a parsed log line (see the module docstring)."""

    __slots__ = ("_drop", "_hash", "_hmac", "_key", "active")

    def __init__(self, drop: Iterable[str] = (), hash: Iterable[str] = (), key: bytes | None = None) -> None:
        self._drop: tuple[_Path, ...] = tuple(_split(p) for p in drop)
        self._hash: tuple[_Path, ...] = tuple(_split(p) for p in hash)
        if self._hash and not key:
            raise ValueError("hashing fields needs a non-empty key")
        self._key = key or b""
        self._hmac: Callable[[bytes, bytes], str] | None = _hmac_sha256() if self._hash else None
        #: False when nothing is configured: callers skip the call entirely.
        self.active = bool(self._drop or self._hash)

    def __call__(self, line: JsonObject) -> JsonObject:
        for path in self._drop:
            line = _replace(line, path, _DROP)
        for path in self._hash:
            line = _replace(line, path, self.hash_value)
        return line

    def hash_value(self, value: Any) -> Any:
        """The pseudonym of one value (``None`` stays ``None``)."""
        if value is None:
            return None
        if isinstance(value, str):
            data = value.encode("utf-8")
        elif type(value) is int:  # its JSON, also beyond the 64 bits orjson writes
            data = str(value).encode()
        else:
            data = orjson.dumps(value, option=orjson.OPT_SORT_KEYS)
        if self._hmac is None:  # no hash paths configured: a caller hashing a value directly
            self._hmac = _hmac_sha256()
        return self._hmac(self._key, data)


def _hmac_sha256() -> Callable[[bytes, bytes], str]:
    """``(key, data) -> hex HMAC-SHA256``, imported when first needed: hashlib loads OpenSSL
    (3.6 MB), which an agent that hashes nothing, and its parse workers, do without."""
    import hashlib
    import hmac

    def digest(key: bytes, data: bytes) -> str:
        return hmac.new(key, data, hashlib.sha256).hexdigest()

    return digest


def hash_key_from(hash_key_env: str, environ: Mapping[str, str]) -> bytes | None:
    """The HMAC key named by ``RedactConfig.hash_key_env`` in ``environ`` (UTF-8), or None.
    The entry point passes ``os.environ``; nothing else reads the environment."""
    value = environ.get(hash_key_env)
    return value.encode("utf-8") if value else None


class _Drop:
    """Marker transform: remove the key."""


_DROP = _Drop()


def _split(path: str) -> _Path:
    parts = tuple(path.split("."))
    if not path or any(not p for p in parts):
        raise ValueError(f"not a dotted field path: {path!r}")
    return parts


def _replace(obj: JsonObject, path: _Path, transform: Any) -> JsonObject:
    """A copy of ``obj`` with the value at ``path`` dropped or transformed; ``obj`` itself when
    the path is not there. Only the containers along the path are copied."""
    head = path[0]
    if head not in obj:
        return obj
    value = obj[head]
    if len(path) > 1:
        if type(value) is not dict:
            return obj
        new_value: Any = _replace(value, path[1:], transform)
        if new_value is value:
            return obj
        copy = dict(obj)
        copy[head] = new_value
        return copy
    copy = dict(obj)
    if transform is _DROP:
        del copy[head]
    else:
        copy[head] = transform(value)
    return copy


__all__ = ["Redactor", "hash_key_from"]
