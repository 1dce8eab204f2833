"""bench/scaling.py's fit t = a + b * n^k through three points: known curves recovered, the
degenerate times (flat, falling, not monotone, steeper than K_MAX) reported, bad input refused."""

import sys

import pytest

from tests.conftest import ROOT

sys.path.insert(0, str(ROOT / "bench"))  # the benches import each other as scripts
import scaling  # noqa: E402
from scaling import K_MAX, fit_power, k_band  # noqa: E402


@pytest.mark.parametrize(
    ("sizes", "a", "b", "k"),
    [
        ((3_000, 12_000, 48_000), 8.0, 0.002, 1.0),
        ((3_000, 12_000, 48_000), 25.0, 3e-5, 1.3),
        ((3_000, 12_000, 48_000), 4.0, 0.5, 0.5),
        ((1, 2, 8), 1.5, 2.0, 0.9),  # not geometric: the bisection, not 4^k
        ((100, 400, 1_600), 0.0, 1e-3, 2.0),
    ],
)
def test_known_curve_is_recovered(sizes, a, b, k):
    times = [a + b * n**k for n in sizes]
    fit = fit_power(sizes, times)
    assert fit.k == pytest.approx(k, abs=1e-9)
    assert fit.a == pytest.approx(a, abs=1e-6)
    assert fit.b == pytest.approx(b, rel=1e-6)
    assert fit.note == ""
    assert [fit.at(n) for n in sizes] == pytest.approx(times)


def test_geometric_sizes_give_log4_of_the_increment_ratio():
    fit = fit_power([1, 4, 16], [10.0, 12.0, 20.0])  # (20-12)/(12-10) = 4 = 4^k
    assert fit.k == pytest.approx(1.0) and fit.a == pytest.approx(10.0 - 2.0 / 3.0)


def test_time_that_does_not_grow_is_k_zero_with_the_least_time_as_fixed_cost():
    fit = fit_power([1, 4, 16], [10.0, 9.0, 9.5])
    assert fit.k == 0.0 and fit.a == 9.0 and fit.b == 0.0
    assert "does not grow" in fit.note


def test_times_not_monotone_give_no_exponent():
    fit = fit_power([1, 4, 16], [10.0, 14.0, 12.0])
    assert fit.k is None and fit.a is None
    assert "not monotone" in fit.note
    with pytest.raises(ValueError, match="no fitted curve"):
        fit.at(4)


def test_rise_flatter_than_any_power_is_reported_as_k_zero():
    # increments 5 then 0.1: ratio 0.02 < ln(4)/ln(4) = 1, the k -> 0 limit
    fit = fit_power([1, 4, 16], [10.0, 15.0, 15.1])
    assert fit.k == 0.0 and fit.a == 10.0
    assert "k < 0 taken as 0" in fit.note


def test_rise_steeper_than_k_max_is_capped_and_said():
    fit = fit_power([1, 4, 16], [1.0, 2.0, 1e6])
    assert fit.k == K_MAX and f"k >= {K_MAX:g}" in fit.note


def test_negative_fixed_cost_is_noted():
    fit = fit_power([1, 4, 16], [1.0, 5.0, 21.0])  # k 1, b 4/3, a -1/3
    assert fit.k == pytest.approx(1.0) and fit.a == pytest.approx(-1 / 3)
    assert "< 0" in fit.note


@pytest.mark.parametrize(
    ("sizes", "times", "message"),
    [
        ([1, 4], [1.0, 2.0], "needs 3 sizes"),
        ([1, 4, 4], [1.0, 2.0, 3.0], "strictly increasing"),
        ([0, 4, 16], [1.0, 2.0, 3.0], "strictly increasing"),
        ([16, 4, 1], [1.0, 2.0, 3.0], "strictly increasing"),
        ([1, 4, 16], [1.0, -2.0, 3.0], "times must be finite and >= 0"),
        ([1, 4, 16], [1.0, float("nan"), 3.0], "times must be finite"),
    ],
)
def test_bad_input_is_refused_with_the_reason(sizes, times, message):
    with pytest.raises(ValueError, match=message):
        fit_power(sizes, times)


def test_k_band_holds_the_fitted_k_and_widens_with_the_noise():
    sizes, times = [1, 4, 16], [10.0, 13.0, 25.0]  # ratio 4: k 1
    assert k_band(sizes, times, 0.0) == pytest.approx((1.0, 1.0))
    lo, hi = k_band(sizes, times, 0.5)
    assert lo < 1.0 < hi
    lo2, hi2 = k_band(sizes, times, 1.0)
    assert lo2 < lo and hi2 > hi


def test_k_band_is_open_when_an_increment_is_within_the_noise():
    assert k_band([1, 4, 16], [10.0, 10.5, 20.0], 0.3) is None  # 10.3 > 10.2: not monotone


def test_k_band_refuses_negative_noise():
    with pytest.raises(ValueError, match="delta must be >= 0"):
        k_band([1, 4, 16], [1.0, 2.0, 3.0], -0.1)


def test_factors_argument_is_checked():
    assert scaling.parse_args(["--factors", "1,2,8"]).factors == (1, 2, 8)
    with pytest.raises(SystemExit):
        scaling.parse_args(["--factors", "4,1,16"])
