"""The tokenizer's rules are a product contract shared with the analytics baseline."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from inferwatch.core.tokenize import MAX_TOKEN_CHARS, MAX_TOKENS, tokenize, tokenize_reference


def test_lowercases_and_splits_on_punctuation_whitespace_and_underscore() -> None:
    assert tokenize("Late AGAIN, late again!! café_au_lait") == ["late", "again", "café", "au", "lait"]


def test_nfkc_then_casefold_unifies_width_ligatures_and_sharp_s() -> None:
    assert tokenize("Ｌａｔｅ ﬁne Straße STRASSE x²") == ["late", "fine", "strasse", "x2"]


def test_digits_are_tokens_and_mixed_runs_stay_whole() -> None:
    assert tokenize("order #A12-7, 3.5kg") == ["order", "a12", "7", "3", "5kg"]


def test_non_latin_scripts_are_letters() -> None:
    assert tokenize("Доставка опоздала, доставка!") == ["доставка", "опоздала"]
    assert tokenize("配送 遅い") == ["配送", "遅い"]


def test_tokens_longer_than_the_limit_are_dropped_not_cut() -> None:
    long_token = "a" * (MAX_TOKEN_CHARS + 1)
    edge = "b" * MAX_TOKEN_CHARS
    assert tokenize(f"x {long_token} {edge} y") == ["x", edge, "y"]


def test_only_long_tokens_or_no_tokens_give_an_empty_list() -> None:
    assert tokenize("") == []
    assert tokenize("  ,;!  ") == []
    assert tokenize(" " * 100) == []
    assert tokenize("z" * 100) == []


def test_at_most_the_first_distinct_tokens_are_kept() -> None:
    text = " ".join(f"w{i}" for i in range(MAX_TOKENS + 50))
    tokens = tokenize(text + " w0 w1")
    assert len(tokens) == MAX_TOKENS
    assert tokens[0] == "w0"
    assert tokens[-1] == f"w{MAX_TOKENS - 1}"


def test_duplicates_keep_first_appearance_order() -> None:
    assert tokenize("b a b c a") == ["b", "a", "c"]


@given(st.text())
def test_fast_path_equals_the_reference_rules(text: str) -> None:
    assert tokenize(text) == tokenize_reference(text)


@given(st.text(alphabet=st.characters(max_codepoint=127)))
def test_ascii_fast_path_equals_the_reference_rules(text: str) -> None:
    assert tokenize(text) == tokenize_reference(text)
