"""The one paired estimator: median of paired ratios, the unit as a random effect, inversion, stored keys."""

import json
import math

import numpy as np
import pytest

from bench_lib.measure.paired import STORED_KEYS, PairedRatio, paired_ratio
from bench_lib.measure.stats import median_ci, median_interval


def test_the_estimate_is_the_median_ratio_with_the_interval_over_its_units():
    rng = np.random.default_rng(0)
    units = [u for _ in range(5) for u in range(3)]
    ratios = [0.5 * (1 + 0.2 * u) * f for u, f in zip(units, rng.lognormal(0, 0.02, 15), strict=True)]
    est = paired_ratio(ratios, units)
    assert est.ratio == float(np.median(ratios)) and est.pairs == 15 and est.units == 3
    assert (est.low, est.high) == median_interval(np.array(ratios), np.array(units))
    # The units disagree by 20-40%: the interval says so, where the pairs alone would not.
    lo, hi = median_ci(np.array(ratios))
    assert est.low < lo and est.high > hi and est.high / est.low > 1.5


def test_without_units_the_pairs_are_one_units_with_the_distribution_free_interval():
    ratios = [1.0 + 0.01 * i for i in range(10)]
    est = paired_ratio(ratios, unit_kind="server")
    assert (est.low, est.high) == median_ci(np.array(ratios)) and est.units == 1 and est.unit_kind == "server"


def test_pairs_as_units_of_their_own_count_each_pair():
    ratios = [0.5, 0.52, 0.48, 0.51, 0.49, 0.5, 0.53, 0.47, 0.5, 0.51, 0.49, 0.3, 0.8, 0.5]  # two far pairs
    est = paired_ratio(ratios, range(14), "stretch", min_per_unit=1)
    assert est.units == est.pairs == 14
    assert (est.low, est.high) == median_interval(np.array(ratios), np.arange(14), min_samples=1)
    # Where a unit needs two pairs to count, units of one pair leave the distribution-free interval alone.
    alone = paired_ratio(ratios, range(14))
    assert (alone.low, alone.high) == median_ci(np.array(ratios)) != (est.low, est.high)


def test_no_pairs_no_estimate_and_labels_must_match():
    assert paired_ratio([]) is None and paired_ratio(np.array([]), []) is None
    with pytest.raises(ValueError, match="3 paired ratios but 2 unit labels"):
        paired_ratio([1.0, 1.0, 1.0], [0, 1])


def test_the_inverse_is_a_speedup_with_its_interval_ends_swapped():
    time_ratio = PairedRatio(0.5, 0.4, 0.8, 12, 3)
    speedup = time_ratio.inverse()
    assert (speedup.ratio, speedup.low, speedup.high) == (2.0, 1.25, 2.5)
    assert (speedup.pairs, speedup.units, speedup.unit_kind) == (12, 3, "process")
    open_ended = PairedRatio(0.5, 0.0, math.inf, 4, 1).inverse()
    assert (open_ended.low, open_ended.high) == (0.0, math.inf)


def test_widening_never_narrows():
    est = PairedRatio(1.0, 0.9, 1.1, 10, 1)
    assert est.widened(0.8, 1.05) == PairedRatio(1.0, 0.8, 1.1, 10, 1)
    assert est.widened(0.95, 1.2) == PairedRatio(1.0, 0.9, 1.2, 10, 1)


def test_stored_keys_are_the_ones_result_files_have_always_held():
    process = PairedRatio(2.0, 1.9, 2.1, 12, 3).to_metrics()
    assert list(process) == ["speedup", "speedup_ci95_low", "speedup_ci95_high", "speedup_pairs", "speedup_processes"]
    assert process["speedup_processes"] == 3 and process["speedup_pairs"] == 12
    stretch = PairedRatio(2.0, 1.9, 2.1, 8, 8, "stretch").to_metrics()
    assert list(stretch) == list(STORED_KEYS) and stretch["speedup_units"] == "paired stretches"


@pytest.mark.parametrize("kind", ["process", "stretch", "server"])
def test_a_speedup_reads_back_as_it_was_stored(kind):
    est = paired_ratio([0.51, 0.49, 0.5, 0.52, 0.48, 0.5, 0.47, 0.53], [0, 0, 1, 1, 2, 2, 3, 3], kind).inverse()
    assert PairedRatio.from_metrics(json.loads(json.dumps(est.to_metrics()))) == est


def test_older_files_read_without_pairs_or_units():
    est = PairedRatio.from_metrics({"speedup": 2, "speedup_ci95_low": 1.5, "speedup_ci95_high": 3.0})
    assert est == PairedRatio(2.0, 1.5, 3.0, 0, 0, "process") and isinstance(est.ratio, float)


@pytest.mark.parametrize("metrics", [
    {},
    {"speedup": 2.0, "speedup_ci95_low": 1.5},
    {"speedup": 2.0, "speedup_ci95_low": 1.5, "speedup_ci95_high": math.inf},
    {"speedup": 2.0, "speedup_ci95_low": math.nan, "speedup_ci95_high": 3.0},
    {"speedup": "2.0", "speedup_ci95_low": 1.5, "speedup_ci95_high": 3.0},
    {"speedup": True, "speedup_ci95_low": 1.5, "speedup_ci95_high": 3.0},
    {"speedup": 2.0, "speedup_ci95_low": 1.5, "speedup_ci95_high": 3.0, "speedup_units": "paired planets"},
    {"speedup": 2.0, "speedup_ci95_low": 1.5, "speedup_ci95_high": 3.0, "speedup_units": ["process"]},
])
def test_metrics_without_a_readable_speedup_give_none(metrics):
    assert PairedRatio.from_metrics(metrics) is None


def test_counts_that_are_not_numbers_read_as_none_stored():
    est = PairedRatio.from_metrics({"speedup": 2.0, "speedup_ci95_low": 1.5, "speedup_ci95_high": 3.0,
                                    "speedup_pairs": "12", "speedup_processes": True})
    assert (est.pairs, est.units) == (0, 0)
