"""The tokenizer of text features: part of the product contract, shared by agent and analytics.

The agent stores ``tokenize(value)`` of every configured text feature as ``ml.tokens.<feature>``;
the analytics worker builds the baseline vocabulary of the training data with the very same
function. Changing a rule below changes what counts as "a new token", so every rule is a
documented decision and has a test:

1. Unicode NFKC normalization, then ``str.casefold()`` (full-width letters, ligatures and case
   variants become one token: ``"Ｌａｔｅ"``, ``"LATE"`` and ``"late"`` are all ``"late"``).
2. Tokens are maximal runs of letters and digits: the regex ``[^\\W_]+`` (Python's Unicode
   ``\\w`` without the underscore). Punctuation, whitespace, ``_`` and symbols separate tokens.
3. Tokens longer than ``MAX_TOKEN_CHARS`` (40) characters are dropped (hashes, base64, URLs
   glued together: noise, not vocabulary).
4. Each token appears once, in order of first appearance.
5. At most ``MAX_TOKENS`` (256) tokens per text: the first 256 distinct ones.

Dependency-free (stdlib only) so that any process can import it cheaply.
"""

from __future__ import annotations

import re
import unicodedata

MAX_TOKEN_CHARS = 40
MAX_TOKENS = 256

_TOKEN_RE = re.compile(r"[^\W_]+")
_findall = _TOKEN_RE.findall

# The ASCII fast path: one byte table that lowercases letters, keeps digits and turns every
# other byte into a space, so ``split()`` yields exactly the tokens of rule 2. (ASCII is
# NFKC-invariant and casefold() equals lower() on it.) Twice as fast as the regex.
_ASCII_TABLE = bytes(
    c + 32 if 65 <= c <= 90 else c if 48 <= c <= 57 or 97 <= c <= 122 else 32 for c in range(256)
)


def tokenize(text: str) -> list[str]:
    """The distinct normalized tokens of ``text`` in first-appearance order (rules above).

    >>> tokenize("Late AGAIN, late again!! café_au_lait")
    ['late', 'again', 'café', 'au', 'lait']
    """
    if text.isascii():
        found = text.encode("ascii").translate(_ASCII_TABLE).decode("ascii").split()
    else:
        text = unicodedata.normalize("NFKC", text).casefold()
        found = _findall(text)
    tokens = [*dict.fromkeys(found)]
    # Filtering is the rare case: a text no longer than the limit has no token longer than it.
    if len(text) > MAX_TOKEN_CHARS and max(map(len, tokens), default=0) > MAX_TOKEN_CHARS:
        tokens = [t for t in tokens if len(t) <= MAX_TOKEN_CHARS]
    if len(tokens) > MAX_TOKENS:
        del tokens[MAX_TOKENS:]
    return tokens


def tokenize_reference(text: str) -> list[str]:
    """The rules above written plainly (no fast path): the specification ``tokenize`` is tested
    against."""
    folded = unicodedata.normalize("NFKC", text).casefold()
    distinct = dict.fromkeys(t for t in re.findall(r"[^\W_]+", folded) if len(t) <= MAX_TOKEN_CHARS)
    return list(distinct)[:MAX_TOKENS]


__all__ = ["MAX_TOKENS", "MAX_TOKEN_CHARS", "tokenize", "tokenize_reference"]
