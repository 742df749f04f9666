"""Text features: document-level OOV rate and the token distribution."""

from __future__ import annotations

from dataclasses import replace

from inferwatch.analytics.detectors import evaluate_version
from inferwatch.analytics.detectors.params import DetectorParams
from inferwatch.analytics.detectors.stats import rate_upper_p
from inferwatch.analytics.detectors.vocabulary import top_tokens
from inferwatch.analytics.model import Status, WindowCounts

from .factories import baseline, counts, firing, pick, text

P = DetectorParams(alpha=1e-4)
KEY = "inputs.review"
VOCAB = {"good": 4000, "bad": 3000, "ok": 2000, "great": 1000}
REVIEW = text(KEY, VOCAB, text_docs=10_000, heldout_docs=2000, heldout_oov_docs=40)  # 2% OOV held out
BASE = baseline(REVIEW)


def review_counts(
    tokens: dict[str, int], docs: int, oov_docs: int, oov: dict[str, int] | None = None
) -> WindowCounts:
    return counts(docs, base=BASE, tokens={KEY: {**tokens, **(oov or {})}}, text_docs={KEY: (docs, oov_docs)})


STABLE = {"good": 1200, "bad": 900, "ok": 600, "great": 300}


def test_texts_in_the_training_vocabulary_raise_nothing() -> None:
    doubled = {t: 2 * c for t, c in STABLE.items()}
    findings, _ = evaluate_version(review_counts(doubled, 6000, 120, {"meh": 20}), BASE, P)
    assert firing(findings) == []
    assert pick(findings, "oov_rate").status is Status.OK
    drift = pick(findings, "vocabulary_drift")
    assert drift.status is Status.OK and drift.statistic == 0.0


def test_an_oov_surge_fires_and_lists_the_new_words() -> None:
    window = review_counts(STABLE, 3000, 240, {"tesla": 90, "rivian": 40, "byd": 40})
    findings, _ = evaluate_version(window, BASE, P)
    f = pick(findings, "oov_rate")
    assert f.status is Status.FIRING and f.strong and f.severity == "critical"
    assert f.p_value == rate_upper_p(240, 3000, 40, 2000)
    assert f.effect_floor == 0.01
    assert f.examples == ("tesla", "byd", "rivian")
    assert f.message == (
        "inputs.review: 8.0% of 3,000 texts contain words outside the training vocabulary "
        "(held-out baseline 2.0%), new: 'tesla' 90, 'byd' 40, 'rivian' 40"
    )


def test_a_token_distribution_shift_fires_with_the_largest_changes() -> None:
    shifted = {"good": 300, "bad": 900, "ok": 600, "great": 1500}
    findings, _ = evaluate_version(review_counts(shifted, 3000, 60, {"superb": 30}), BASE, P)
    f = pick(findings, "vocabulary_drift")
    assert f.status is Status.FIRING and f.severity == "warning"
    assert f.statistic is not None and f.effect_floor is not None and f.statistic >= f.effect_floor >= 0.1
    assert f.examples == ("superb",)
    assert "new tokens: 'superb' 30" in f.message
    assert "'great' 45% (was 10%)" in f.message
    # exactly the baseline OOV rate: clean (though n = 3,000 is merged with the next for power)
    assert pick(findings, "oov_rate").status is Status.OK


def test_bins_are_the_top_tokens_only() -> None:
    params = replace(P, vocab_bins=2)
    assert top_tokens(REVIEW, 2) == ["good", "bad"]
    assert top_tokens(REVIEW, 4, min_count=2000) == ["good", "bad", "ok"]
    # 'ok' and 'great' are not bins: a swap between them is invisible
    swapped = {"good": 1200, "bad": 900, "ok": 300, "great": 600}
    findings, _ = evaluate_version(review_counts(swapped, 3000, 60), BASE, params)
    f = pick(findings, "vocabulary_drift")
    assert f.status is Status.OK and f.statistic == 0.0
    assert set(f.expected["shares"]) <= {"good", "bad"}


def test_rare_and_new_tokens_do_not_move_the_token_distribution() -> None:
    """The bins are counted the same way in training and in the window. Before, the rest of the
    vocabulary and the OOV documents were bins too: a window whose rare words are new (as they
    always are for texts the vocabulary was not fitted on) looked shifted."""
    rare = {f"rare{i}": 1 for i in range(500)}
    base = baseline(text(KEY, {**VOCAB, **rare}, text_docs=10_000, heldout_docs=2000, heldout_oov_docs=600))
    # the same top-token shares; the rare training words replaced by new ones in 30% of texts
    window = counts(
        3000,
        base=base,
        tokens={KEY: {**STABLE, **{f"new{i}": 1 for i in range(900)}}},
        text_docs={KEY: (3000, 900)},
    )
    findings, _ = evaluate_version(window, base, P)
    f = pick(findings, "vocabulary_drift")
    assert f.status is Status.OK and f.statistic == 0.0
    assert set(f.expected["shares"]) <= set(VOCAB)


def test_a_small_text_window_is_merged() -> None:
    # ten texts that all go "great": a big JS distance, but ten texts cannot tell
    findings, state = evaluate_version(review_counts({"great": 10}, 10, 0), BASE, P)
    f = pick(findings, "vocabulary_drift")
    assert f.status is Status.SKIPPED and "merged with the next window" in f.message
    assert state.pending["vocabulary_drift|inputs.review"]["windows"] == 1
    assert pick(findings, "oov_rate").status is Status.OK  # no OOV text: clean at any size


def test_missing_baseline_parts_and_empty_windows_are_skips() -> None:
    bare = baseline(text(KEY, {}, text_docs=0, heldout_docs=0, heldout_oov_docs=0))
    findings, _ = evaluate_version(counts(100, base=bare, text_docs={KEY: (100, 5)}), bare, P)
    assert "no held-out OOV rate" in pick(findings, "oov_rate").message
    assert "no vocabulary" in pick(findings, "vocabulary_drift").message
    findings, _ = evaluate_version(counts(100, base=BASE), BASE, P)
    assert "no texts with tokens" in pick(findings, "oov_rate").message
    assert pick(findings, "vocabulary_drift").status is Status.SKIPPED
