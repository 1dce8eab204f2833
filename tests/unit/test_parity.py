"""The parity gate's comparison (ml/parity.py): relative differences per row, the worst row,
probabilities, and the verdicts that block a promotion."""

import math

import pytest

from lakeloop.ml.parity import TOLERANCE, Parity, SparkScores, compare


def _spark(preds, probs=None):
    return SparkScores(records=[{} for _ in preds], predictions=preds, probabilities=probs)


def test_equal_scores_pass_and_the_difference_is_relative_to_the_value():
    p = compare(_spark([250_000.0, 0.5]), [250_000.0 * (1 + 5e-10), 0.5], None)
    assert p.passed and p.max_diff == pytest.approx(5e-10, rel=1e-3) and p.worst_row == 0
    # below 1 in magnitude the difference is absolute: 1e-9 of 1
    assert compare(_spark([1e-12]), [2e-12], None).passed


def test_a_difference_above_the_tolerance_fails_naming_the_row():
    p = compare(_spark([10.0, 20.0, 30.0]), [10.0, 20.0 + 20 * 3 * TOLERANCE, 30.0], None)
    assert not p.passed and p.worst_row == 1
    assert p.failure().startswith("online and batch scores differ: max relative difference")
    assert "(row 1 of 3 held-out rows)" in p.failure()


def test_probabilities_are_compared_per_class():
    spark = _spark([1.0, 0.0], [(0.2, 0.8), (0.9, 0.1)])
    assert compare(spark, [1.0, 0.0], [(0.2, 0.8), (0.9, 0.1)]).passed
    off = compare(spark, [1.0, 0.0], [(0.2, 0.8), (0.9, 0.1 + 1e-6)])
    assert not off.passed and off.worst_row == 1 and off.max_probability_diff > 1e-7
    missing = compare(spark, [1.0, 0.0], [(0.2, 0.8), None])
    assert not missing.passed and math.isinf(missing.max_diff)


def test_nan_from_the_scorer_fails():
    assert not compare(_spark([1.0]), [float("nan")], None).passed


def test_a_scorer_error_fails_with_its_message():
    p = Parity(0, float("inf"), None, None, error="unsupported stage Bucketizer")
    assert p.failure() == "the online scorer cannot score this model: unsupported stage Bucketizer"


def test_row_counts_must_agree():
    with pytest.raises(ValueError):
        compare(_spark([1.0, 2.0]), [1.0], None)
