"""Text features: the out-of-vocabulary rate and the token distribution.

Counting unit: a document counts once per distinct token (the agent stores each token once per
document), so token counts are document frequencies, in the window and in the baseline alike.

- oov_rate: documents with at least one token outside the training vocabulary, of the
  documents with tokens, against the OOV rate measured on held-out training rows (Fisher exact,
  binomial for a large held-out set), effect floor max(1 pp, 0.5 p0).
- vocabulary_drift: bins = the top ``vocab_bins`` training tokens that training holds at
  least ``min_expected_per_bin`` times, counted the same way on both sides (documents holding
  the token). The rest of the vocabulary and the OOV tokens are not bins: the vocabulary was
  fitted on the training texts, so there every rare token is in-vocabulary by construction,
  while new texts show their rare tokens as OOV. An "other in-vocabulary" bin would always
  look depleted and an "OOV" bin inflated on normal traffic (Good-Turing: the training
  singletons' mass is the mass new data puts on unseen tokens). New words are the OOV-rate
  test's job, measured against held-out rows. JS distance held to js_floor + its sampling
  quantile at the two-sample n_eff; the alert lists the new tokens by count and the largest
  single-token changes.
"""

from __future__ import annotations

import math

from inferwatch.analytics.detectors.common import (
    Context,
    describe_changes,
    dist_fields,
    dist_series,
    num,
    pct,
    rate_fields,
    rate_series,
    rate_severity,
)
from inferwatch.analytics.detectors.slices import FeatureCounts
from inferwatch.analytics.detectors.stats import rate_upper_p
from inferwatch.analytics.model import FeatureBaseline, Finding, Status


def _new_tokens(fc: FeatureCounts, limit: int) -> list[tuple[str, int]]:
    return sorted(fc.oov_tokens.items(), key=lambda tc: (-tc[1], tc[0]))[:limit]


def oov_rate(ctx: Context, key: str, fb: FeatureBaseline, fc: FeatureCounts) -> Finding:
    if fb.heldout_docs <= 0:
        return ctx.skipped("oov_rate", key, "the baseline has no held-out OOV rate (no held-out texts)")
    if fc.text_docs <= 0:
        return ctx.skipped("oov_rate", key, "no texts with tokens in this window")
    p0 = fb.oov_rate
    floor = ctx.params.oov_floor(p0)
    k = min(fc.oov_docs, fc.text_docs)
    v = rate_series(
        ctx,
        f"oov_rate|{key}",
        k,
        fc.text_docs,
        p0,
        floor,
        lambda a, b: rate_upper_p(a, b, fb.heldout_oov_docs, fb.heldout_docs),
        "OOV",
    )
    new = _new_tokens(fc, ctx.params.examples)
    fields = rate_fields(v, "oov_rate")
    fields["examples"] = tuple(t for t, _ in new)
    if v.status is Status.SKIPPED:
        return ctx.skipped("oov_rate", key, v.reason, **fields)
    if v.status is Status.FIRING:
        listed = ", ".join(f"{t!r} {num(c)}" for t, c in new[:3])
        msg = (
            f"{key}: {pct(v.rate)} of {num(v.n)} texts contain words outside the training vocabulary "
            f"(held-out baseline {pct(p0)})" + (f", new: {listed}" if listed else "")
        )
        return ctx.finding("oov_rate", key, v.status, rate_severity(v), msg, **fields)
    msg = f"{key}: {pct(v.rate)} of {num(v.n)} texts have OOV words (baseline {pct(p0)})"
    return ctx.finding("oov_rate", key, v.status, "info", msg, **fields)


def top_tokens(fb: FeatureBaseline, k: int, min_count: float = 0.0) -> list[str]:
    """The ``k`` most frequent training tokens, of those held by at least ``min_count``
    training documents (a rarer token cannot be a bin of its own, and the rarest in-vocabulary
    tokens are the ones self-fitting inflates)."""
    ranked = sorted(fb.vocabulary.items(), key=lambda tc: (-tc[1], tc[0]))
    return [t for t, c in ranked if c >= min_count][:k]


def drift(ctx: Context, key: str, fb: FeatureBaseline, fc: FeatureCounts) -> Finding:
    if not fb.vocabulary or fb.text_docs <= 0:
        return ctx.skipped("vocabulary_drift", key, "the baseline has no vocabulary for this feature")
    top = top_tokens(fb, ctx.params.vocab_bins, ctx.params.min_expected_per_bin)
    if len(top) < 2:
        return ctx.skipped(
            "vocabulary_drift",
            key,
            "the baseline has fewer than two frequent tokens: nothing to drift between",
        )
    reference = {t: float(fb.vocabulary[t]) for t in top}
    current = {t: float(fc.tokens[t]) for t in top if fc.tokens.get(t)}
    v = dist_series(ctx, f"vocabulary_drift|{key}", current, reference, "token")
    new = _new_tokens(fc, ctx.params.examples)
    fields = dist_fields(v)
    fields["examples"] = tuple(t for t, _ in new)
    fields["observed"] = {**fields["observed"], "new_tokens": dict(new)}
    if v.status is Status.SKIPPED:
        return ctx.skipped("vocabulary_drift", key, v.reason, **fields)
    cut = "inf" if math.isinf(v.cut) else f"{v.cut:.2f}"
    if v.status is Status.FIRING:
        listed = ", ".join(f"{t!r} {num(c)}" for t, c in new[:3])
        msg = (
            f"{key}: token distribution shifted (JS {v.statistic:.2f} >= {cut}, {num(v.n)} token-documents)"
            + (f", new tokens: {listed}" if listed else "")
            + f"; largest changes: {describe_changes(v, 2)}"
        )
        return ctx.finding("vocabulary_drift", key, v.status, "warning", msg, **fields)
    msg = f"{key}: token distribution stable (JS {v.statistic:.2f} < {cut})"
    return ctx.finding("vocabulary_drift", key, v.status, "info", msg, **fields)
