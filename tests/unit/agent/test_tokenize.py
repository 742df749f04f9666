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


def test_cjk_runs_become_bigrams_as_elasticsearch_cjk_analyzer_splits_them() -> None:
    # Elastic's documented cjk_bigram example (standard tokenizer + cjk_bigram), token for token
    assert tokenize("東京都は、日本の首都であり") == [
        "東京", "京都", "都は", "日本", "本の", "の首", "首都", "都で", "であ", "あり"
    ]  # fmt: skip
    assert tokenize("配送が遅すぎます") == ["配送", "送が", "が遅", "遅す", "すぎ", "ぎま", "ます"]
    assert tokenize("안녕하세요 세계") == ["안녕", "녕하", "하세", "세요", "세계"]  # Hangul


def test_a_lone_cjk_character_is_a_token_and_other_letters_beside_a_run_are_their_own() -> None:
    assert tokenize("iphone用 ケース 東京2024年 猫") == [
        "iphone",
        "用",
        "ケー",
        "ース",
        "東京",
        "2024",
        "年",
        "猫",
    ]
    assert tokenize("ｶﾀｶﾅ") == ["カタ", "タカ", "カナ"]  # half-width katakana: NFKC first


def test_a_long_cjk_clause_is_vocabulary_not_noise() -> None:
    clause = "配送" * 30  # 60 characters: a single token of it used to be dropped as too long
    assert tokenize(clause) == ["配送", "送配"]


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


# Texts of words around the length limit (rule 4), glued by separators of every kind: arbitrary
# text almost never holds a run of 41 letters or digits, these always come close to one. ASCII
# words take the fast path, the others the regex.
@st.composite
def _words_near_the_limit(draw: st.DrawFn) -> list[str]:
    alphabet = draw(st.sampled_from(["aZ9", "aZ9é", "aZ9東"]))
    long_words = st.text(alphabet=alphabet, min_size=MAX_TOKEN_CHARS - 1, max_size=MAX_TOKEN_CHARS + 2)
    return draw(st.lists(long_words | st.text(alphabet="bY0", max_size=5), max_size=6))


_separators = st.sampled_from([" ", "_", "-", ",", "\t", "\n", "\x1f", "\x00", "~", "  "])


@given(_words_near_the_limit(), _separators)
def test_rule_4_on_words_near_the_limit_equals_the_reference(words: list[str], separator: str) -> None:
    text = separator.join(words)
    assert tokenize(text) == tokenize_reference(text)
