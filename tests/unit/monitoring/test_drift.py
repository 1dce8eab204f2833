"""The drift statistics (lakeloop.monitoring.drift) on tiny DataFrames: profiles, bucketing with
the reference's edges and categories, PSI/KS/Wasserstein/JS/chi2 on the small arrays, the edge
cases (NaN vs null, constant and all-null columns, empty current data, missing features) and
the serialization round trips."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.spatial.distance import jensenshannon
from scipy.stats import chi2_contingency

from lakeloop.monitoring import drift
from lakeloop.monitoring.drift import (
    NAN_BIN,
    NULL_BIN,
    PROFILE_SCHEMA,
    UNSEEN,
    FeatureProfile,
    compare,
    current_profile,
    from_json,
    profile,
    profile_rows,
    profiles_from_rows,
    to_json,
)

SCHEMA = "x double, flag boolean, const double, empty double, n int, city string"
NUM = ["x", "flag", "const", "empty", "n"]
CAT = ["city"]


def _rows(rng: np.random.Generator, size: int, *, shift: float = 0.0, new_city: bool = False):
    cities = ["a", "b", "c"] + (["zz"] if new_city else [])
    out = []
    for i in range(size):
        x: float | None = float(rng.normal(10 + shift, 2))
        if i % 50 == 0:
            x = None
        elif i % 50 == 1:
            x = float("nan")
        elif i % 250 == 2:
            x = float("inf")
        city = None if i % 40 == 3 else str(rng.choice(cities, p=_p(len(cities))))
        out.append((x, bool(i % 3 == 0), 7.0, None, int(rng.integers(0, 5)), city))
    return out


def _p(k: int) -> list[float]:
    return [0.5, 0.3, 0.2] if k == 3 else [0.3, 0.2, 0.1, 0.4]


@pytest.fixture(scope="module")
def ref_data(spark):
    return spark.createDataFrame(_rows(np.random.default_rng(1), 1000), SCHEMA)


@pytest.fixture(scope="module")
def ref(ref_data):
    return profile(ref_data, NUM, CAT, grid=200)


@pytest.fixture(scope="module")
def ref_local():
    return _rows(np.random.default_rng(1), 1000)


def test_numeric_profile_counts_nulls_nans_apart_and_matches_numpy(ref, ref_local):
    xs = np.array([np.nan if r[0] is None else r[0] for r in ref_local])
    nulls = sum(r[0] is None for r in ref_local)
    nans = sum(r[0] is not None and math.isnan(r[0]) for r in ref_local)
    values = xs[~np.isnan(xs)]
    finite = values[np.isfinite(values)]
    p = ref["x"]
    assert (p.kind, p.rows, p.nulls, p.nans) == ("numeric", 1000, nulls, nans)
    assert nulls == 20 and nans == 20
    # deciles of the non-null non-NaN values (inf included as a value), open outer bins
    expected = np.quantile(values, np.arange(1, 10) / 10, method="inverted_cdf")
    assert p.edges == pytest.approx(list(expected), abs=1e-9)
    assert len(p.counts) == len(p.edges) + 1 and sum(p.counts) == values.size
    assert p.counts[-1] >= 4  # the inf values sit in the open top bucket
    assert p.mean == pytest.approx(finite.mean(), rel=1e-12)
    assert p.std == pytest.approx(finite.std(), rel=1e-9)
    assert (p.min, p.max) == (finite.min(), math.inf)  # inf is a value, not in mean/std
    assert len(p.quantiles) == 200 and p.quantiles == sorted(p.quantiles)
    assert p.bins()[0].startswith("(-inf, ") and p.bins()[-1].endswith(", inf)")


def test_booleans_are_numeric_0_1_and_constant_and_all_null_columns(ref):
    flag = ref["flag"]
    assert flag.edges == [0.0, 1.0] and flag.counts == [0, 666, 334]
    assert flag.mean == pytest.approx(334 / 1000)
    const = ref["const"]  # one edge: everything in the bucket above it
    assert (const.edges, const.counts, const.std) == ([7.0], [0, 1000], 0.0)
    empty = ref["empty"]  # no values: no edge, one (empty) bucket, no grid
    assert (empty.edges, empty.counts, empty.nulls, empty.quantiles) == ([], [0], 1000, [])
    assert empty.mean is None and empty.std is None


def test_categorical_profile_most_frequent_first_nulls_apart(ref, ref_local):
    city = ref["city"]
    assert city.kind == "categorical" and city.categories == ["a", "b", "c"]
    want = [sum(r[5] == k for r in ref_local) for k in "abc"]
    assert city.counts == want and city.nulls == 25 and city.rows == 1000
    assert city.counts[0] > city.counts[1] > city.counts[2]


def _current_rows():
    """Drifted: x shifted by 1.5 sd, const half moved to 6.0, n all null, a new city "zz"."""
    rows = _rows(np.random.default_rng(2), 600, shift=3.0, new_city=True)
    return [(r[0], r[1], 7.0 if i % 2 else 6.0, None, None, r[5]) for i, r in enumerate(rows)]


@pytest.fixture(scope="module")
def cur(spark, ref):
    return current_profile(spark.createDataFrame(_current_rows(), SCHEMA), ref, grid=200)


def test_current_profile_uses_the_reference_buckets_and_counts_unseen(ref, cur):
    rows = _current_rows()
    assert cur["x"].edges == ref["x"].edges
    xs = [r[0] for r in rows]
    bounds = [-math.inf, *ref["x"].edges, math.inf]
    want = [
        sum(1 for v in xs if v is not None and not math.isnan(v) and lo <= v < hi)
        for lo, hi in zip(bounds, bounds[1:], strict=False)
    ]
    want[-1] += sum(1 for v in xs if v == math.inf)
    assert cur["x"].counts == want and cur["x"].rows == 600
    city = cur["city"]
    assert city.categories == ["a", "b", "c", UNSEEN]
    assert city.counts[-1] == sum(r[5] == "zz" for r in rows) > 0

    d = compare(ref["x"], cur["x"])
    assert d.bins[-2:] == [NULL_BIN, NAN_BIN] and len(d.bins) == len(ref["x"].edges) + 3
    assert d.psi > 1.0 and d.ks > 0.4  # a 1.5-sd shift
    assert d.wasserstein == pytest.approx(3.0 / ref["x"].std, rel=0.15)
    assert d.jensen_shannon is None and d.chi2_p is None
    c = compare(ref["city"], city)
    assert c.bins == ["a", "b", "c", UNSEEN, NULL_BIN]
    assert c.reference_counts[3] == 0 and c.current_counts[3] == city.counts[-1]
    assert c.psi > 0.5 and c.chi2_p < 1e-6 and c.ks is None
    same = compare(ref["flag"], cur["flag"])  # drawn alike: no drift
    assert same.psi < 0.01 and same.ks < 0.01


def test_constant_reference_moving_is_drift(ref, cur):
    assert ref["const"].edges == [7.0] and ref["const"].std == 0.0
    assert cur["const"].counts == [300, 300]  # 6.0 falls below the one edge
    d = compare(ref["const"], cur["const"])
    assert d.psi > 1.0 and d.ks == pytest.approx(0.5)
    assert d.wasserstein == pytest.approx(0.5)  # std 0: in the feature's units


def test_all_null_columns_on_either_side(ref, cur):
    d = compare(ref["n"], cur["n"])  # the day's column is all null
    assert d.null_share_current == 1.0 and d.psi > 5 and d.ks is None and d.wasserstein is None
    assert cur["n"].quantiles == [] and cur["n"].mean is None
    e = compare(ref["empty"], cur["empty"])  # null in the reference too: nothing moved
    assert e.bins == ["(-inf, inf)", NULL_BIN, NAN_BIN] and e.psi == 0.0


def test_empty_current_data_fails_naming_the_feature(spark, ref):
    empty = current_profile(spark.createDataFrame([], SCHEMA), ref, grid=20)
    assert empty["x"].rows == 0 and empty["x"].quantiles == []
    with pytest.raises(ValueError, match="feature 'x': the current data has no rows"):
        compare(ref["x"], empty["x"])
    with pytest.raises(ValueError, match="feature 'city': the current data has no rows"):
        compare(ref["city"], empty["city"])


def test_psi_formula_and_floor_on_known_counts():
    ref = FeatureProfile("f", "numeric", 100, 0, 0, [0.0], [50, 50], [], quantiles=[])
    cur = FeatureProfile("f", "numeric", 100, 10, 0, [0.0], [90, 0], [], quantiles=[])
    d = compare(ref, cur)
    r = np.array([0.5, 0.5, 1e-4, 1e-4])  # null and NaN bins empty in the reference
    c = np.array([0.9, 1e-4, 0.1, 1e-4])  # empty bucket floored; NaN empty on both: adds 0
    assert d.psi == pytest.approx(float(np.sum((c - r) * np.log(c / r))), rel=1e-12)
    assert (d.null_share_reference, d.null_share_current) == (0.0, 0.1)
    assert d.ks is None and d.wasserstein is None  # no grids
    same = compare(ref, ref)
    assert same.psi == 0.0
    assert compare(ref, cur, floor=1e-6).psi > d.psi  # a smaller floor, a larger penalty


def test_categorical_js_and_chi2_match_scipy_and_drop_empty_columns():
    ref = FeatureProfile("c", "categorical", 110, 10, 0, [], [60, 40, 0], ["a", "b", "x"])
    cur = FeatureProfile(
        "c", "categorical", 100, 0, 0, [], [30, 50, 0, 20], ["a", "b", "x", UNSEEN]
    )
    d = compare(ref, cur)
    assert d.bins == ["a", "b", "x", UNSEEN, NULL_BIN]
    r, c = np.array([60, 40, 0, 0, 10.0]), np.array([30, 50, 0, 20, 0.0])
    assert (d.reference_counts, d.current_counts) == (list(r.astype(int)), list(c.astype(int)))
    assert d.jensen_shannon == pytest.approx(float(jensenshannon(r / r.sum(), c / c.sum())))
    assert 0 < d.jensen_shannon <= math.sqrt(math.log(2))
    table = np.array([[60, 40, 0, 10], [30, 50, 20, 0]])  # the all-zero "x" column dropped
    assert d.chi2_p == pytest.approx(float(chi2_contingency(table).pvalue), rel=1e-12)
    assert drift.chi2_pvalue(np.array([5.0, 0]), np.array([7.0, 0])) == 1.0


def test_ks_and_wasserstein_from_grids_of_known_distributions():
    p = np.array(drift.grid_probs(1000))
    a, b = p * 1.0, p + 0.25  # U(0,1) vs U(0.25, 1.25): D = 0.25, W1 = 0.25
    assert drift.ks_from_grids(a, b) == pytest.approx(0.25, abs=2e-3)
    assert drift.wasserstein_from_grids(a, b) == pytest.approx(0.25, abs=1e-12)
    assert drift.wasserstein_from_grids(a, np.array(drift.grid_probs(10)) + 0.25) == (
        pytest.approx(0.25, abs=1e-3)
    )
    assert drift.ks_from_grids(a, a) == 0.0


def test_missing_feature_wrong_type_and_mismatched_profiles_fail_clearly(spark, ref, ref_data):
    with pytest.raises(ValueError, match=r"'nope' is not a column .*columns: x, flag, const"):
        profile(ref_data, ["x", "nope"])
    with pytest.raises(ValueError, match=r"'city' is profiled as numeric but its column is string"):
        profile(ref_data, ["city"])
    with pytest.raises(ValueError, match="listed twice"):
        profile(ref_data, ["x"], ["x"])
    with pytest.raises(ValueError, match=r"'x' is not a column .*columns: v"):
        current_profile(spark.createDataFrame([(1.0,)], "v double"), {"x": ref["x"]})
    with pytest.raises(ValueError, match="cannot compare categorical profile 'city'"):
        compare(ref["x"], ref["city"])
    moved = FeatureProfile("x", "numeric", 10, 0, 0, [1.0], [5, 5], [])
    with pytest.raises(ValueError, match="not bucketed with the reference's edges"):
        compare(ref["x"], moved)
    with pytest.raises(ValueError, match="bins must be at least 2"):
        profile(ref_data, ["x"], bins=1)


def test_profiles_round_trip_through_json_and_a_spark_table(spark, ref):
    assert from_json(to_json(ref)) == ref
    df = spark.createDataFrame(profile_rows(ref), PROFILE_SCHEMA)
    extra = df.selectExpr("*", "'m' AS model_name", "3 AS model_version")
    assert profiles_from_rows(extra.collect()) == ref
    assert profiles_from_rows(profile_rows(ref)) == ref
    with pytest.raises(ValueError, match="not a reference profile"):
        from_json('{"x": 1}')
    with pytest.raises(ValueError, match="lacks the columns"):
        profiles_from_rows([{"feature": "x"}])
