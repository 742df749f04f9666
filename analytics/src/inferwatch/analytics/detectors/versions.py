"""Model versions: a version never seen before, and a known version gone from the traffic.

- new: a version with documents that is not among the known versions -> info, strong (a fact,
  not a statistic: it opens at once). Its missing baseline is reported by ``evaluate_version``.
- vanished: a known version with no documents while the model has traffic -> warning, not
  strong (a low-traffic canary may miss one window; two in a row open the alert).
"""

from __future__ import annotations

from collections.abc import Mapping

from inferwatch.analytics.detectors.common import Context, num
from inferwatch.analytics.model import Baseline, Finding, Status


def evaluate(
    ctx_for: Mapping[str, Context],
    docs: Mapping[str, int],
    known: frozenset[str],
    baselines: Mapping[str, Baseline],
) -> list[Finding]:
    out: list[Finding] = []
    total = sum(docs.values())
    for version in sorted(v for v, n in docs.items() if n > 0 and v not in known):
        ctx = ctx_for[version]
        has = "has a baseline" if version in baselines else "has no baseline yet: build one to watch it"
        msg = f"{ctx.model}: new version {version!r} is serving ({num(docs[version])} predictions); it {has}"
        out.append(
            ctx.finding(
                "version",
                None,
                Status.FIRING,
                "info",
                msg,
                key="new",
                strong=True,
                observed={"docs": docs[version]},
                expected={"known_versions": sorted(known)},
                examples=(version,),
            )
        )
    if total <= 0:
        return out
    for version in sorted(v for v in known if docs.get(v, 0) <= 0):
        ctx = ctx_for[version]
        msg = f"{ctx.model}: version {version!r} served no predictions in this window ({num(total)} went to others)"
        out.append(
            ctx.finding(
                "version",
                None,
                Status.FIRING,
                "warning",
                msg,
                key="vanished",
                observed={"docs": 0, "model_docs": total},
                examples=(version,),
            )
        )
    return out
