"""The agent writes a categorical value as a string (``agent.normalize.category_str``); analytics
turns what it reads back into the same string (``analytics.sources.tables.category_str``) before
comparing it with a baseline. The two are duplicated (the agent never imports pandas), so they
are held to one table here: for every JSON scalar, equal output."""

from __future__ import annotations

from typing import Any

import numpy as np
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from inferwatch.analytics.sources.tables import category_str as analytics_category_str
from inferwatch.core.contract import category_str as agent_category_str
from tests.unit.agent.test_normalize import CATEGORY_TABLE


@pytest.mark.parametrize(("value", "expected"), CATEGORY_TABLE)
def test_both_rules_give_the_table(value: Any, expected: str) -> None:
    assert agent_category_str(value) == expected
    assert analytics_category_str(value) == expected


@pytest.mark.parametrize(("value", "expected"), CATEGORY_TABLE)
def test_a_value_read_back_as_it_is_stored_gives_the_same_string(value: Any, expected: str) -> None:
    # What analytics reads is what the agent wrote (a string), or, from pandas / Elasticsearch
    # numeric fields, the number widened to float.
    assert analytics_category_str(agent_category_str(value)) == expected
    if type(value) is int and abs(value) < 2**53:
        assert analytics_category_str(float(value)) == expected
        assert analytics_category_str(np.float64(value)) == expected
        assert analytics_category_str(np.int64(value)) == expected


json_scalars = (
    st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8)
)


@settings(max_examples=300, deadline=None)
@given(json_scalars)
def test_the_rules_agree_on_any_json_scalar(value: Any) -> None:
    parsed = orjson.loads(orjson.dumps(value))  # as the agent meets it: parsed by orjson
    assert agent_category_str(parsed) == analytics_category_str(parsed)
