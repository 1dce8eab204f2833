"""lakeloop's Spark drift statistics against the libraries they imitate: Evidently 0.7.23's PSI
(its own equal-width Sturges binning, reproduced in Spark by drift.evidently_psi) to 1e-9,
KS D from the 2000-point quantile grids against scipy's exact D to 1e-3, the normalised
Wasserstein distance against scipy's; and why production PSI uses the reference deciles."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.stats import ks_2samp, wasserstein_distance

from lakeloop.monitoring.drift import compare, current_profile, evidently_psi, profile

COLS = ["norm", "logn"]


def _sample(seed: int, size: int, shift: float) -> pd.DataFrame:
    """normal(50 + 10·shift, 10) and a skewed lognormal(0.7·shift, 1.5), a few nulls/NaNs."""
    rng = np.random.default_rng(seed)
    df = pd.DataFrame(
        {
            "norm": rng.normal(50 + 10 * shift, 10, size),
            "logn": rng.lognormal(0.7 * shift, 1.5, size),
        }
    )
    df.loc[::97, "norm"] = np.nan  # Spark gets null here
    return df


def _spark(spark, pdf: pd.DataFrame):
    rows = [
        (None if np.isnan(a) else float(a), float(b))
        for a, b in zip(pdf["norm"], pdf["logn"], strict=True)
    ]
    rows[5] = (rows[5][0], float("nan"))  # and a NaN (Evidently drops both alike)
    return spark.createDataFrame(rows, "norm double, logn double")


@pytest.fixture(scope="module")
def data(spark):
    ref, cur, same = _sample(3, 3000, 0.0), _sample(4, 2500, 1.0), _sample(5, 2500, 0.0)
    cur.loc[5, "logn"] = np.nan
    same.loc[5, "logn"] = np.nan
    ref.loc[5, "logn"] = np.nan
    frames = {"ref": ref, "cur": cur, "same": same}
    return frames, {k: _spark(spark, v) for k, v in frames.items()}


@pytest.fixture(scope="module")
def drifts(data):
    _, sdf = data
    ref = profile(sdf["ref"], COLS)
    out = {}
    for k in ("cur", "same"):
        cur = current_profile(sdf[k], ref)
        out[k] = {c: compare(ref[c], cur[c]) for c in COLS}
    return out


def _evidently(ref: pd.Series, cur: pd.Series) -> float:
    from evidently import DataDefinition, Dataset, Report
    from evidently.metrics import ValueDrift

    dd = DataDefinition(numerical_columns=["v"])
    run = Report([ValueDrift(column="v", method="psi")]).run(
        Dataset.from_pandas(pd.DataFrame({"v": cur}), data_definition=dd),
        Dataset.from_pandas(pd.DataFrame({"v": ref}), data_definition=dd),
    )
    return float(run.dict()["metrics"][0]["value"])


@pytest.mark.parametrize("col", COLS)
def test_spark_psi_with_evidentlys_binning_equals_evidently(data, col):
    pdf, sdf = data
    ours = evidently_psi(sdf["ref"], sdf["cur"], col)
    theirs = _evidently(pdf["ref"][col], pdf["cur"][col])
    assert theirs > 0.01  # a real shift, not 0 == 0
    assert abs(ours - theirs) <= 1e-9, (ours, theirs)


def test_evidently_psi_fails_clearly(spark, data):
    _, sdf = data
    with pytest.raises(ValueError, match=r"'nope' is not in the current DataFrame"):
        evidently_psi(sdf["ref"].withColumnRenamed("norm", "nope"), sdf["cur"], "nope")
    nulls = spark.createDataFrame([(None,)] * 3, "norm double")
    with pytest.raises(ValueError, match="no finite values in the current data"):
        evidently_psi(sdf["ref"], nulls, "norm")


@pytest.mark.parametrize("col", COLS)
def test_ks_and_wasserstein_from_quantile_grids_match_scipy(data, drifts, col):
    pdf, _ = data
    r, c = pdf["ref"][col].dropna().to_numpy(), pdf["cur"][col].dropna().to_numpy()
    d = drifts["cur"][col]
    exact = ks_2samp(r, c, method="exact").statistic
    assert exact > 0.2 and abs(d.ks - exact) <= 1e-3, (d.ks, exact)
    w = wasserstein_distance(r, c) / np.std(r)
    assert d.wasserstein == pytest.approx(w, rel=0.02)


def test_decile_psi_flags_the_skewed_shift_equal_width_bins_barely_see(data, drifts):
    pdf, sdf = data
    deciles = drifts["cur"]["logn"].psi
    equal_width = evidently_psi(sdf["ref"], sdf["cur"], "logn")
    assert deciles > 0.2 and equal_width < 0.1 and deciles > 3 * equal_width, (
        deciles,
        equal_width,
    )


def test_undrifted_data_stays_under_the_threshold(drifts):
    for col in COLS:
        assert drifts["same"][col].psi < 0.1, drifts["same"][col]
        assert drifts["same"][col].ks < 0.05
        assert drifts["cur"][col].psi > 0.2  # and the shifted sample does not
