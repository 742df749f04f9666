from __future__ import annotations

from inferwatch.agent.files.lines import split_lines
from inferwatch.agent.model import OversizedLine


def split(
    data: bytes, base: int = 0, max_line: int = 100
) -> tuple[int, list[int], list[bytes], list[OversizedLine]]:
    offsets: list[int] = []
    lines: list[bytes] = []
    oversized: list[OversizedLine] = []
    used = split_lines(data, base, max_line, offsets, lines, oversized)
    return used, offsets, lines, oversized


def test_complete_lines_with_their_start_offsets() -> None:
    assert split(b"ab\ncde\nf\n", base=10) == (9, [10, 13, 17], [b"ab", b"cde", b"f"], [])


def test_the_unfinished_tail_is_not_consumed() -> None:
    assert split(b"ab\ncd") == (3, [0], [b"ab"], [])
    assert split(b"abcd") == (0, [], [], [])


def test_trailing_cr_stripped_and_empty_lines_skipped_but_consumed() -> None:
    assert split(b"\na\r\n\r\n\nb\rc\n") == (11, [1, 7], [b"a", b"b\rc"], [])


def test_lines_over_the_limit_are_reported_not_returned() -> None:
    long = b"x" * 11
    used, offsets, lines, oversized = split(b"ok\n" + long + b"\nafter\n", max_line=10)
    assert (used, offsets, lines) == (21, [0, 15], [b"ok", b"after"])
    assert oversized == [OversizedLine(3, 11, long)]


def test_a_line_of_exactly_the_limit_is_kept() -> None:
    assert split(b"x" * 10 + b"\n", max_line=10)[2] == [b"x" * 10]
