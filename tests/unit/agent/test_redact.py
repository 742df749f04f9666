"""Fields named in the redact config never leave the host in clear."""

from __future__ import annotations

import hashlib
import hmac

import pytest

from inferwatch.agent.redact import Redactor, hash_key_from

KEY = b"secret-key"


def hmac_hex(data: bytes) -> str:
    return hmac.new(KEY, data, hashlib.sha256).hexdigest()


def line() -> dict[str, object]:
    return {
        "model": "m",
        "user_id": 77,
        "inputs": {"email": "a@b.c", "age": 41, "address": {"zip": "10115", "city": "Berlin"}, "flag": True},
        "outputs": {"score": 0.5},
    }


def test_drop_removes_top_level_and_nested_paths() -> None:
    out = Redactor(drop=["user_id", "inputs.address.zip"])(line())
    assert out == {
        "model": "m",
        "inputs": {"email": "a@b.c", "age": 41, "address": {"city": "Berlin"}, "flag": True},
        "outputs": {"score": 0.5},
    }


def test_hash_is_hmac_sha256_hex_of_utf8_or_compact_json() -> None:
    out = Redactor(hash=["inputs.email", "inputs.age", "inputs.flag", "inputs.address"], key=KEY)(line())
    inputs = out["inputs"]
    assert isinstance(inputs, dict)
    assert inputs["email"] == hmac_hex(b"a@b.c")
    assert inputs["age"] == hmac_hex(b"41")
    assert inputs["flag"] == hmac_hex(b"true")
    assert inputs["address"] == hmac_hex(b'{"city":"Berlin","zip":"10115"}')
    assert len(inputs["email"]) == 64


def test_null_stays_null_and_missing_paths_are_ignored() -> None:
    obj = {"inputs": {"email": None, "age": 3}, "outputs": 5}
    out = Redactor(drop=["nope", "outputs.score", "inputs.x.y"], hash=["inputs.email"], key=KEY)(obj)
    assert out == {"inputs": {"email": None, "age": 3}, "outputs": 5}


def test_the_input_object_is_not_modified() -> None:
    original = line()
    snapshot = line()
    out = Redactor(drop=["inputs.address.zip"], hash=["inputs.email"], key=KEY)(original)
    assert original == snapshot
    assert out != snapshot
    assert out["outputs"] is original["outputs"]  # untouched branches are shared, not copied


def test_drop_runs_before_hash() -> None:
    out = Redactor(drop=["inputs"], hash=["inputs.email"], key=KEY)(line())
    assert "inputs" not in out


def test_inactive_when_nothing_is_configured() -> None:
    assert not Redactor().active
    assert Redactor(drop=["x"]).active


def test_hashing_without_a_key_is_refused() -> None:
    with pytest.raises(ValueError, match="key"):
        Redactor(hash=["inputs.email"])


def test_malformed_paths_are_refused() -> None:
    with pytest.raises(ValueError, match="dotted"):
        Redactor(drop=["inputs..email"])


def test_same_key_same_pseudonym_other_key_other_pseudonym() -> None:
    a = Redactor(hash=["inputs.email"], key=KEY)(line())
    b = Redactor(hash=["inputs.email"], key=KEY)(line())
    c = Redactor(hash=["inputs.email"], key=b"other")(line())
    assert a == b
    assert a != c


def test_the_hash_key_comes_from_the_named_environment_variable() -> None:
    assert hash_key_from("K", {"K": "sécret"}) == "sécret".encode()
    assert hash_key_from("K", {"K": ""}) is None
    assert hash_key_from("K", {}) is None
