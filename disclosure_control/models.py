"""Statistical models (statsmodels OLS, logit, probit): fit, coefficient table, checks.

Only the coefficient table leaves (no residuals, fitted values or leverage). A model needs
residual degrees of freedom >= ``min_dof``; a binary regressor (a categorical level) with
fewer than ``min_level_obs`` observations on either side is flagged, because its
coefficient then describes a handful of people.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from .rules import RuleSet

__all__ = ["fit", "coefficient_table", "model_reasons", "METHODS"]

METHODS = ("ols", "logit", "probit")


def fit(method: str, endog: pd.Series, exog: pd.DataFrame):
    import statsmodels.api as sm

    if method not in METHODS:
        raise ValueError(f"unknown model {method!r}")
    model = {"ols": sm.OLS, "logit": sm.Logit, "probit": sm.Probit}[method]
    kwargs = {} if method == "ols" else {"disp": 0}
    return model(endog.astype(float), exog.astype(float), missing="drop").fit(**kwargs)


def coefficient_table(result) -> pd.DataFrame:
    ci = result.conf_int()
    table = pd.DataFrame({
        "coef": result.params, "std_err": result.bse, "z_or_t": result.tvalues, "p_value": result.pvalues,
        "ci_lower": ci.iloc[:, 0], "ci_upper": ci.iloc[:, 1],
    })
    table.index.name = "term"
    return table


def model_reasons(result, exog: pd.DataFrame, rules: RuleSet) -> tuple[list[tuple[str, str, str]], dict]:
    """(check, status, reason) findings and a summary (n, dof)."""
    out = []
    dof = int(result.df_resid)
    nobs = int(result.nobs)
    if dof < rules.min_dof:
        out.append(("dof", "fail", f"residual degrees of freedom {dof} below {rules.min_dof}"))
    used = exog.loc[getattr(result.model.data, "row_labels", exog.index)] if hasattr(result.model, "data") else exog
    for column in used.columns:
        values = used[column].dropna().to_numpy(dtype=float)
        uniques = np.unique(values)
        if len(uniques) == 2 and set(uniques.tolist()) <= {0.0, 1.0}:
            ones = int(values.sum())
            smaller = min(ones, len(values) - ones)
            if smaller < rules.min_level_obs:
                out.append(("levels", "fail", f"regressor {column}: a level with {smaller} observations (< {rules.min_level_obs})"))
    return out, {"nobs": nobs, "df_resid": dof}
