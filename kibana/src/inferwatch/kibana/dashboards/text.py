"""A model's Text dashboard: OOV rate, top tokens now vs a week earlier, new tokens."""

from __future__ import annotations

from inferwatch.core.config import ModelConfig
from inferwatch.kibana.dashboard import VERSION_CONTROL, DashboardBuilder, model_query
from inferwatch.kibana.dashboards.panels import presence
from inferwatch.kibana.lens import (
    Layer,
    LensPanel,
    count,
    datatable,
    date_histogram,
    metric,
    terms,
    xy,
    xy_layer,
    xy_state,
)
from inferwatch.kibana.saved_objects import ALERTS, LOGS


def text_dashboard(model: str, cfg: ModelConfig) -> DashboardBuilder | None:
    texts = sorted(f for f, k in cfg.features.items() if k == "text")
    if not texts:
        return None
    d = DashboardBuilder(
        f"text:{model}",
        f"inferwatch: Text ({model})",
        f"Vocabulary of the text inputs of model {model}: OOV rate against the training vocabulary "
        "(computed by the worker), top tokens now vs a week earlier, and the new tokens.",
        controls=list(VERSION_CONTROL),
    )
    for f in texts:
        key = f"inputs.{f}"
        title = f"{key}: OOV rate while alerting"
        t, val, eff = d.col(title, "time"), d.col(title, "value"), d.col(title, "effect")
        lay = Layer(
            d.layer(title),
            ALERTS.id,
            (
                date_histogram(t),
                metric(val, "max", "statistic.value", "OOV rate (share of documents)"),
                metric(eff, "max", "effect", "Above the training OOV rate by"),
            ),
        )
        d.add_lens(
            LensPanel(
                title,
                "lnsXY",
                (lay,),
                xy(lay, "line", t, [val, eff]),
                query=f'model : "{model}" and feature : "{key}" and detector : "oov_rate"',
                description="The oov_rate detector's window rate (documents with a token outside the "
                "training vocabulary) and its excess over the held-out training rate, from the oov_rate "
                "alert document: its latest firing window, at the time the alert last changed (the "
                "history stream holds incident events, without the detectors' statistics).",
            ),
            w=24,
            h=10,
        )

        title = f"{key}: top tokens, now vs a week earlier"
        tok, now = d.col(title, "token"), d.col(title, "now")
        tok_before, before = d.col(title, "token a week earlier"), d.col(title, "before")
        # Two layers: Lens refuses dynamic top values in a layer whose metrics have different time
        # shifts (getDisallowedTermsMessage, .../operations/definitions/terms/helpers.ts). Each
        # layer takes its own top 20 (now, and a week earlier); the chart shows both on one axis.
        tokens = f"ml.tokens.{f}"
        now_layer = Layer(
            d.layer(title),
            LOGS.id,
            (terms(tok, tokens, now, size=20, label="Token", other=False), count(now, "Documents")),
        )
        before_layer = Layer(
            d.layer(f"{title} (a week earlier)"),
            LOGS.id,
            (
                terms(tok_before, tokens, before, size=20, label="Token", other=False),
                count(before, "Documents, a week earlier", shift="1w"),
            ),
        )
        vis = xy_state(
            [
                xy_layer(now_layer, "bar_horizontal", tok, [now]),
                xy_layer(before_layer, "bar_horizontal", tok_before, [before]),
            ]
        )
        d.add_lens(
            LensPanel(title, "lnsXY", (now_layer, before_layer), vis, query=model_query(model)),
            w=24,
            h=14,
        )

        title = f"{key}: new tokens (not in the training vocabulary)"
        tok, w, c = d.col(title, "token"), d.col(title, "windows"), d.col(title, "count")
        lay = Layer(
            d.layer(title),
            ALERTS.id,
            (
                terms(tok, "examples", c, size=50, label="New token", other=False),
                count(c, "Alerts naming it"),
                metric(w, "max", "windows", "Windows"),
            ),
        )
        query = f'model : "{model}" and feature : "{key}" and detector : ("vocabulary_drift" or "oov_rate")'
        d.add_lens(LensPanel(title, "lnsDatatable", (lay,), datatable(lay), query=query), w=24, h=14)
        presence(d, model, key)
        d.newline()
    return d
