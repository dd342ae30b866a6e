"""Property: random frames (bool, category, NA, ints, dates, unicode) thrown at every API method and
the gate never raise, and every verdict is one of pass / review / fail."""
from __future__ import annotations

import numpy as np
import pandas as pd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from disclosure_control import gate
from disclosure_control.safe import ACRO

STATUSES = {"pass", "review", "fail"}
TEXT = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), min_size=0, max_size=6)


@st.composite
def frames(draw):
    n = draw(st.integers(min_value=0, max_value=40))
    cols = {
        "flag": draw(st.lists(st.one_of(st.booleans(), st.none()), min_size=n, max_size=n)),
        "group": draw(st.lists(st.one_of(st.sampled_from(["a", "b", "ç", "日本", ""]), st.none()), min_size=n, max_size=n)),
        "count": draw(st.lists(st.one_of(st.integers(-5, 10**6), st.none()), min_size=n, max_size=n)),
        "value": draw(st.lists(st.one_of(st.floats(allow_nan=True, allow_infinity=True, width=32), st.none()), min_size=n, max_size=n)),
        "label": draw(st.lists(TEXT, min_size=n, max_size=n)),
        "day": draw(st.lists(st.dates(min_value=__import__("datetime").date(1900, 1, 1), max_value=__import__("datetime").date(2100, 1, 1)), min_size=n, max_size=n)),
    }
    frame = pd.DataFrame(cols)
    frame["flag"] = frame["flag"].astype("boolean") if draw(st.booleans()) else frame["flag"]
    frame["group"] = frame["group"].astype("category") if draw(st.booleans()) else frame["group"]
    frame["day"] = pd.to_datetime(frame["day"])
    return frame


def _calls(acro, df):
    yield lambda: acro.crosstab(df.flag, df.group, margins=True)
    yield lambda: acro.crosstab(df.group, df.label, values=df.value, aggfunc=["mean", "count"])
    yield lambda: acro.pivot_table(df, index="group", columns="flag", values="count", aggfunc="sum", margins=True)
    yield lambda: acro.pivot_table(df, index=["group", "day"], values=["value", "count"], aggfunc=["mean", "max"])
    yield lambda: acro.describe(df, "value")
    yield lambda: acro.hist(df, "count", bins=5)
    yield lambda: acro.ols(df["value"], df[["count"]])
    yield lambda: acro.logit(df["flag"], df[["count", "value"]])
    yield lambda: acro.olsr("value ~ count", df)
    yield lambda: acro.surv_func(df["count"], df["flag"], "table")


@settings(max_examples=6, deadline=None, suppress_health_check=list(HealthCheck))
@given(frame=frames(), loaded=st.booleans(), suppress=st.booleans())
def test_random_frames_never_raise(tmp_path_factory, frame, loaded, suppress):
    out = tmp_path_factory.mktemp("out")
    loader = lambda name: frame.copy()  # noqa: E731
    acro = ACRO(outputs_dir=out, data_loader=loader, quiet=True, suppress=suppress)
    df = acro.load("t") if loaded else frame
    for call in _calls(acro, df):
        call()   # nothing escapes: a failure is a shown ``fail`` verdict
    assert {v.status for v in acro.results.values()} <= STATUSES
    report = gate.check_folder(out, loader)
    assert {v.status for v in report.outputs} <= STATUSES
    for path in out.iterdir():
        assert gate.check_file(path, None, loader).status in STATUSES
