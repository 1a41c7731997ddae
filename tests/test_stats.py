import math

import numpy as np
import pytest
from scipy import stats as st

from bench_lib.measure.stats import Measurement, binom_half_ppf, median_ci, student_t_ppf


def test_statistics_of_literal_samples():
    m = Measurement((1.0, 2.0, 3.0, 4.0, 100.0))
    assert m.median == 3.0
    assert m.q1 == 2.0 and m.q3 == 4.0 and m.iqr == 2.0
    assert m.mean == pytest.approx(22.0)
    assert m.p90 == pytest.approx(61.6)
    assert m.outliers()[0] == 1  # 100 lies beyond Q3 + 1.5 IQR


def test_median_ci_is_order_statistics_with_95_percent_coverage():
    x = np.arange(1.0, 11.0)  # n = 10: the textbook interval is [x(2), x(9)]
    assert median_ci(x) == (2.0, 9.0)
    coverage = 1 - 2 * st.binom.cdf(1, 10, 0.5)
    assert coverage >= 0.95


def test_median_ci_covers_true_median_about_95_percent_of_the_time():
    rng = np.random.default_rng(0)
    true_median = math.log(2)  # exponential(1)
    hits = sum(lo <= true_median <= hi for lo, hi in (median_ci(rng.exponential(size=40)) for _ in range(2000)))
    assert 0.94 <= hits / 2000 <= 0.99


def test_too_few_samples_give_full_range_and_a_warning():
    m = Measurement((1.0, 5.0, 3.0))
    assert m.ci95 == (1.0, 5.0)
    assert any("only 3 samples" in w for w in m.warnings)


def test_noise_warning_thresholds():
    quiet = Measurement(tuple(1.0 + 0.001 * i for i in range(20)))
    noisy = Measurement(tuple(1.0 + 0.02 * i for i in range(20)))
    very = Measurement(tuple(1.0 + 0.2 * i for i in range(20)))
    assert not quiet.has_warnings and quiet.meets_confidence()
    assert noisy.warnings == (f"noisy: IQR is {noisy.relative_spread:.0%} of the median",)
    assert very.warnings[0].startswith("very noisy")


def test_invalid_samples_are_rejected():
    with pytest.raises(ValueError):
        Measurement(())
    with pytest.raises(ValueError):
        Measurement((1.0, float("nan")))


def test_pytest_benchmark_stats_block():
    m = Measurement((0.002, 0.004, 0.006), number_per_sample=10)
    s = m.as_pytest_benchmark_stats()
    assert s["data"] == [0.002, 0.004, 0.006]
    assert s["rounds"] == 3 and s["iterations"] == 10
    assert s["ops"] == pytest.approx(250.0)
    assert s["total"] == pytest.approx(0.12)


def test_binomial_order_statistics_match_scipy():
    for n in [*range(1, 200), 500, 1999, 2000]:
        for q in (0.025, 0.005, 0.05):
            assert binom_half_ppf(q, n) == int(st.binom.ppf(q, n, 0.5)), (n, q)
            assert binom_half_ppf(1 - q, n) == int(st.binom.isf(q, n, 0.5)), (n, q)


def test_student_t_quantiles_match_scipy():
    for df in range(1, 120):
        for q in (0.5, 0.8, 0.95, 0.975, 0.995):
            assert student_t_ppf(q, df) == pytest.approx(st.t.ppf(q, df), rel=1e-9, abs=1e-12), (df, q)
    with pytest.raises(ValueError):
        student_t_ppf(0.975, 0)
