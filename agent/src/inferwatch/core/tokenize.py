"""The tokenizer of text features: part of the product contract, shared by agent and analytics.

The agent stores ``tokenize(value)`` of every configured text feature as ``ml.tokens.<feature>``;
the analytics worker builds the baseline vocabulary of the training data with the very same
function. Changing a rule below changes what counts as "a new token", so every rule is a
documented decision and has a test:

1. Unicode NFKC normalization, then ``str.casefold()`` (full-width letters, ligatures and case
   variants become one token: ``"Ｌａｔｅ"``, ``"LATE"`` and ``"late"`` are all ``"late"``).
2. Tokens are maximal runs of letters and digits: the regex ``[^\\W_]+`` (Python's Unicode
   ``\\w`` without the underscore). Punctuation, whitespace, ``_`` and symbols separate tokens.
3. Chinese, Japanese and Korean, written without spaces, are split as Elasticsearch's ``cjk``
   analyzer splits them (Lucene's ``CJKBigramFilter``): inside a token, a run of Han, Hiragana,
   Katakana or Hangul characters becomes its overlapping bigrams (``配送が遅い`` -> ``配送``,
   ``送が``, ``が遅``, ``遅い``), a run of one such character stays one token, and the letters or
   digits beside the run are tokens of their own (``iphone用`` -> ``iphone``, ``用``). Without
   this a whole clause was one token, so almost every CJK text was out of vocabulary.
4. Tokens longer than ``MAX_TOKEN_CHARS`` (40) characters are dropped (hashes, base64, URLs
   glued together: noise, not vocabulary).
5. Each token appears once, in order of first appearance.
6. At most ``MAX_TOKENS`` (256) tokens per text: the first 256 distinct ones.

``TOKENIZER_VERSION`` names these rules: 2 since rule 3 (version 1 kept CJK runs whole).

Dependency-free (stdlib only) so that any process can import it cheaply.
"""

from __future__ import annotations

import functools
import itertools
import re
import unicodedata
from collections.abc import Callable

MAX_TOKEN_CHARS = 40
MAX_TOKENS = 256
TOKENIZER_VERSION = 2

_TOKEN_RE = re.compile(r"[^\W_]+")
_findall = _TOKEN_RE.findall

# The scripts Lucene's CJKBigramFilter bigrams (its IDEOGRAPHIC, HIRAGANA, KATAKANA and HANGUL
# token types): Hangul Jamo, CJK iteration/closing marks, Hiragana, Katakana (with the prolonged
# sound mark), Hangul compatibility Jamo, Katakana extensions, CJK Extension A, CJK Unified
# Ideographs, Hangul Jamo extensions and syllables, CJK compatibility ideographs, half-width
# Katakana, and the supplementary ideographic planes.
CJK_RANGES = (
    "\u1100-\u11ff\u3005-\u3007\u3040-\u309f\u30a0-\u30ff\u3130-\u318f\u31f0-\u31ff"
    "\u3400-\u4dbf\u4e00-\u9fff\ua960-\ua97f\uac00-\ud7af\ud7b0-\ud7ff\uf900-\ufaff"
    "\uff66-\uff9f\U00020000-\U0002fa1f\U00030000-\U0003134f"
)


@functools.cache
def _cjk() -> tuple[Callable[[str], object], Callable[[str], object], Callable[[str], list[str]]]:
    """``(may_have_cjk, has_cjk, split_cjk)``, compiled at the first text that is not ASCII:
    these classes take 6 ms to compile, which every process (the agent, each parse worker, the
    CLI) would otherwise pay at import. ``may_have_cjk`` is one range from the first CJK code
    point to the last: half the cost of ``has_cjk`` on a text that has none (accented Latin,
    Cyrillic...), which is then all it costs."""
    return (
        re.compile("[\u1100-\U0003134f]").search,
        re.compile(f"[{CJK_RANGES}]").search,
        re.compile(f"([{CJK_RANGES}]+)").split,
    )


# The ASCII fast path: one byte table that lowercases letters, keeps digits and turns every
# other byte into a space, so ``split()`` yields exactly the tokens of rule 2. (ASCII is
# NFKC-invariant and casefold() equals lower() on it.) Twice as fast as the regex.
_ASCII_TABLE = bytes(
    c + 32 if 65 <= c <= 90 else c if 48 <= c <= 57 or 97 <= c <= 122 else 32 for c in range(256)
)
# Rule 4 on that path in one C-level search: every letter or digit becomes "a", so a token longer
# than the limit is a run of MAX_TOKEN_CHARS + 1 "a" (bytes.find: a third of max(map(len, tokens))).
_ASCII_SHAPE = bytes(32 if t == 32 else 97 for t in _ASCII_TABLE)
_TOO_LONG = b"a" * (MAX_TOKEN_CHARS + 1)


def tokenize(text: str) -> list[str]:
    """The distinct normalized tokens of ``text`` in first-appearance order (rules above).

    >>> tokenize("Late AGAIN, late again!! café_au_lait")
    ['late', 'again', 'café', 'au', 'lait']
    """
    # Filtering long tokens is the rare case: a text no longer than the limit has none.
    if text.isascii():
        raw = text.encode()  # the UTF-8 of ASCII text is its ASCII, the fastest encoder
        tokens = [*dict.fromkeys(raw.translate(_ASCII_TABLE).decode().split())]
        if len(raw) > MAX_TOKEN_CHARS and raw.translate(_ASCII_SHAPE).find(_TOO_LONG) >= 0:
            tokens = [t for t in tokens if len(t) <= MAX_TOKEN_CHARS]
    else:
        text = unicodedata.normalize("NFKC", text).casefold()
        found = _findall(text)
        may_have_cjk, has_cjk, _ = _cjk()
        if may_have_cjk(text) and has_cjk(text):
            found = _cjk_bigrams(found)
        tokens = [*dict.fromkeys(found)]
        if len(text) > MAX_TOKEN_CHARS and max(map(len, tokens), default=0) > MAX_TOKEN_CHARS:
            tokens = [t for t in tokens if len(t) <= MAX_TOKEN_CHARS]
    if len(tokens) > MAX_TOKENS:
        del tokens[MAX_TOKENS:]
    return tokens


def _cjk_bigrams(tokens: list[str]) -> list[str]:
    """Rule 3 applied to the letter/digit runs of a text that holds CJK characters."""
    out: list[str] = []
    _, has_cjk, split_cjk = _cjk()
    for token in tokens:
        if not has_cjk(token):
            out.append(token)
            continue
        # split() with a capturing group: other text at even positions, CJK runs at odd ones
        for i, part in enumerate(split_cjk(token)):
            if i % 2 == 0 or len(part) == 1:
                if part:
                    out.append(part)
            else:
                out += [part[j : j + 2] for j in range(len(part) - 1)]
    return out


def tokenize_reference(text: str) -> list[str]:
    """The rules above written plainly (no fast path): the specification ``tokenize`` is tested
    against."""
    folded = unicodedata.normalize("NFKC", text).casefold()
    pieces: list[str] = []
    for run in re.findall(r"[^\W_]+", folded):
        for segment in re.findall(f"[{CJK_RANGES}]+|[^{CJK_RANGES}]+", run):
            if re.fullmatch(f"[{CJK_RANGES}]{{2,}}", segment):
                pieces += [a + b for a, b in itertools.pairwise(segment)]
            else:
                pieces.append(segment)
    distinct = dict.fromkeys(t for t in pieces if len(t) <= MAX_TOKEN_CHARS)
    return list(distinct)[:MAX_TOKENS]


__all__ = [
    "CJK_RANGES",
    "MAX_TOKENS",
    "MAX_TOKEN_CHARS",
    "TOKENIZER_VERSION",
    "tokenize",
    "tokenize_reference",
]
