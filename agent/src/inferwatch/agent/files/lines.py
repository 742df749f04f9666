"""Split a chunk of a log file into complete lines with their byte offsets (pure).

The hot path of the agent: one ``bytes.split`` per chunk and one offset int per line. The slow
per-line loop runs only when the chunk has a CR, an empty line or a line over the limit.
"""

from __future__ import annotations

from itertools import accumulate

from inferwatch.agent.model import OversizedLine

HEAD_BYTES = 1024  # how much of an oversized line the dead letter keeps


def split_lines(
    data: bytes,
    base: int,
    max_line_bytes: int,
    offsets: list[int],
    lines: list[bytes],
    oversized: list[OversizedLine],
) -> int:
    """Append the complete lines of ``data`` (which starts at file offset ``base``) to
    ``offsets``/``lines``; return how many bytes were consumed (up to and including the last
    newline; 0 if ``data`` has no newline).

    A trailing ``\\r`` is stripped, empty lines are skipped (their bytes still count as consumed),
    lines longer than ``max_line_bytes`` go to ``oversized`` instead.
    """
    parts = data.split(b"\n")
    rest = parts.pop()
    if not parts:
        return 0
    consumed = len(data) - len(rest)
    if (
        b"\r" not in data
        and b"\n\n" not in data
        and parts[0]
        and (consumed <= max_line_bytes or max(map(len, parts)) <= max_line_bytes)
    ):
        starts = list(accumulate([len(p) + 1 for p in parts], initial=base))
        starts.pop()
        offsets.extend(starts)
        lines.extend(parts)
        return consumed
    pos = base
    for part in parts:
        start = pos
        pos += len(part) + 1
        if len(part) > max_line_bytes:
            oversized.append(OversizedLine(start, len(part), part[:HEAD_BYTES]))
            continue
        if part.endswith(b"\r"):
            part = part[:-1]
        if part:
            offsets.append(start)
            lines.append(part)
    return consumed
