"""The spool payload is a gzip-compressed Elasticsearch bulk body of create actions."""

from __future__ import annotations

import gzip
import random
import subprocess
import sys
import zlib
from collections.abc import Iterator
from unittest import mock

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from inferwatch.agent import bulkbody
from inferwatch.agent.bulkbody import compress, decode, encode, encode_items, raw_body
from inferwatch.agent.model import Event

EVENTS = [
    Event("id1", "logs-inferwatch.a-default", b'{"x":1}'),
    Event("id2", "logs-inferwatch.b-default", b'{"x":"two"}'),
    Event("id3", "logs-inferwatch.a-default", b"{}"),
]


def test_the_body_is_create_actions_each_followed_by_its_document() -> None:
    assert gzip.decompress(encode(EVENTS)) == (
        b'{"create":{"_index":"logs-inferwatch.a-default","_id":"id1"}}\n{"x":1}\n'
        b'{"create":{"_index":"logs-inferwatch.b-default","_id":"id2"}}\n{"x":"two"}\n'
        b'{"create":{"_index":"logs-inferwatch.a-default","_id":"id3"}}\n{}\n'
    )


def test_round_trip() -> None:
    assert decode(encode(EVENTS)) == [(e.index, e.doc_id, e.body) for e in EVENTS]


def test_encode_items_of_a_subset_equals_encoding_those_events() -> None:
    items = decode(encode(EVENTS))
    assert encode_items(items[1:], level=6) == encode(EVENTS[1:], level=6)


def test_the_same_items_give_the_same_bytes() -> None:
    assert encode(EVENTS) == encode(list(EVENTS))


@pytest.mark.parametrize("level", [0, 1, 9])
def test_every_level_is_valid_gzip(level: int) -> None:
    payload = encode(EVENTS, level)
    assert payload[:2] == b"\x1f\x8b"
    assert decode(payload) == decode(encode(EVENTS))


def test_an_empty_batch_is_an_empty_body() -> None:
    assert gzip.decompress(encode([])) == b""
    assert decode(encode([])) == []


def test_raw_body_is_what_gets_compressed() -> None:
    body = raw_body((e.index, e.doc_id, e.body) for e in EVENTS)
    assert gzip.decompress(compress(body)) == body
    assert body.count(b"\n") == 2 * len(EVENTS)


def test_unusual_ids_and_indices_are_json_escaped() -> None:
    items = [('idx"\\', 'id "with" quotes\n', b"{}")]
    assert decode(encode_items(items)) == items
    action = gzip.decompress(encode_items(items)).split(b"\n")[0]
    assert orjson.loads(action) == {"create": {"_index": 'idx"\\', "_id": 'id "with" quotes\n'}}


@pytest.mark.parametrize(
    "payload",
    [
        b"not gzip",
        gzip.compress(b'{"create":{"_index":"i","_id":"a"}}\n'),  # an action without its document
        gzip.compress(b'{"index":{"_index":"i","_id":"a"}}\n{}\n'),  # not a create action
        gzip.compress(b'{"create":{"_index":"i","_id":"a"}}\n{}'),  # no final newline
        gzip.compress(b"[]\n{}\n"),
    ],
)
def test_malformed_payloads_raise_value_error(payload: bytes) -> None:
    with pytest.raises(ValueError):
        decode(payload)


json_documents = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.text(),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(), children, max_size=3),
    max_leaves=8,
).map(lambda value: orjson.dumps({"v": value}))

items_strategy = st.lists(st.tuples(st.text(min_size=1), st.text(min_size=1), json_documents), max_size=20)


@given(items_strategy, st.integers(0, 9))
def test_round_trip_of_any_items(items: list[tuple[str, str, bytes]], level: int) -> None:
    assert decode(encode_items(items, level)) == items
    assert decode(encode([Event(i, x, d) for x, i, d in items], level)) == items


@pytest.mark.parametrize(
    "index", ["logs-inferwatch.churn_classifier-prod", "logs-inferwatch.mod_le__-pröd", 'we"ird\\index']
)
def test_action_head_and_tail_splice_to_exactly_the_raw_body(index: str) -> None:
    doc_id = "q1Zx-_9aBcDeFgHiJkLmNo"  # base64url: needs no escaping in JSON
    document = '{"ml":{"inputs":{"t":"日本 ☃"}}}'.encode()
    spliced = bulkbody.action_head(index) + doc_id.encode() + bulkbody.ACTION_TAIL + document + b"\n"
    assert spliced == bulkbody.raw_body([(index, doc_id, document)])
    assert bulkbody.decode(bulkbody.compress(spliced)) == [(index, doc_id, document)]


@pytest.fixture(params=["native", "python"])
def inflater(request: pytest.FixtureRequest) -> Iterator[str]:
    """``decode_some`` by the native ``gzip_lines`` where it is installed, and by the Python
    streaming inflate (what runs without it, and whenever the native one declines)."""
    if request.param == "native" and bulkbody._gzip_lines is None:
        pytest.skip("inferwatch_native is not installed (tests/unit/agent/test_native.py says so in CI)")
    with mock.patch.object(
        bulkbody, "_gzip_lines", bulkbody._gzip_lines if request.param == "native" else None
    ):
        yield request.param


def test_decode_some_parses_only_the_items_asked_for_and_agrees_with_decode(inflater: str) -> None:
    from inferwatch.agent.bulkbody import decode, decode_some, encode_items

    items = [("logs-inferwatch.m-default", f"id-{i}", b'{"n":%d}' % i) for i in range(50)]
    payload = encode_items(items)
    assert decode_some(payload, [3, 0, 49]) == {3: items[3], 0: items[0], 49: items[49]}
    assert decode_some(payload, []) == {}
    assert decode(payload) == items
    with pytest.raises(ValueError):
        decode_some(b"not gzip", [0])


@given(
    sizes=st.lists(st.integers(0, 3000), min_size=1, max_size=40),
    picks=st.lists(st.integers(0, 39), max_size=10),
    step=st.sampled_from([7, 64, 1024, bulkbody._STEP]),
    piece=st.sampled_from([100, 4096, bulkbody._PIECE]),
    random_text=st.booleans(),
)
def test_decode_some_finds_items_across_the_pieces_it_inflates(
    sizes: list[int], picks: list[int], step: int, piece: int, random_text: bool
) -> None:  # the Python streaming path: the native one declines nothing valid
    # Documents from empty to many pieces long, with input steps and output caps small enough that
    # action and document lines straddle pieces, and pieces stop at the cap (text that compresses
    # well) or at the end of a step (text that does not).
    rng = random.Random(len(sizes))
    items = [
        (
            "logs-inferwatch.m-default",
            f"id-{i}",
            b'{"t":"%s"}' % (rng.randbytes(n).hex()[:n].encode() if random_text else b"x" * n),
        )
        for i, n in enumerate(sizes)
    ]
    payload = encode_items(items)
    wanted = [p % len(items) for p in picks]
    with (
        mock.patch.object(bulkbody, "_STEP", step),
        mock.patch.object(bulkbody, "_PIECE", piece),
        mock.patch.object(bulkbody, "_gzip_lines", None),
    ):
        assert bulkbody.decode_some(payload, wanted) == {i: items[i] for i in wanted}


def test_decode_some_refuses_a_cut_body_and_an_item_it_does_not_hold(inflater: str) -> None:
    items = [("logs-inferwatch.m-default", f"id-{i}", b"{}") for i in range(3)]
    payload = encode_items(items)
    with pytest.raises(ValueError, match="gzip"):
        bulkbody.decode_some(payload[:-9], [0])
    with pytest.raises(ValueError, match="pairs of lines"):
        bulkbody.decode_some(compress(raw_body(items)[:-1]), [0])
    with pytest.raises(ValueError, match="line 7 is not a create action"):
        bulkbody.decode_some(payload, [3])


BODY = raw_body(
    ("logs-inferwatch.m-default", f"id-{i:06d}", b'{"ml":{"inputs":{"text":"late again %d"}}}' % i)
    for i in range(2000)
)


@pytest.mark.parametrize("level", [1, 2])
def test_levels_1_and_2_are_igzips_gzip(level: int) -> None:
    from isal import isal_zlib

    payload = compress(BODY, level)
    assert payload == isal_zlib.compress(BODY, level, 31)
    assert payload != zlib.compress(BODY, level, 31)  # not zlib's, or this test proves nothing
    assert zlib.decompress(payload, 31) == gzip.decompress(payload) == BODY
    assert len(payload) <= len(zlib.compress(BODY, level, 31))  # at least zlib's ratio at that level


@pytest.mark.parametrize("level", [0, 3, 6, 9])
def test_level_0_and_levels_above_igzips_are_zlibs(level: int) -> None:
    assert compress(BODY, level) == zlib.compress(BODY, level, 31)


def test_level_0_stores_without_compressing() -> None:
    payload = compress(BODY, 0)
    assert len(payload) > len(BODY)
    assert gzip.decompress(payload) == BODY


def test_without_isal_every_level_is_zlibs() -> None:
    """A platform without an isal wheel: the module imports and compresses with zlib."""
    script = (
        "import sys, zlib\n"
        "sys.modules['isal'] = None  # import isal raises ImportError\n"
        "from inferwatch.agent.bulkbody import compress\n"
        "body = b'{\"a\":1}\\n' * 5000\n"
        "assert all(compress(body, lv) == zlib.compress(body, lv, 31) for lv in range(10))\n"
        "print('zlib')\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout == "zlib\n"
