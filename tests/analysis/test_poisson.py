"""Exact Poisson intervals and the Poisson-likelihood Arrhenius fit: values by hand, and coverage
in the sparse (0–5 events per temperature) and rich regimes on synthetic vacancy windows."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from hts_mlff.analysis.poisson import _poisson_fit, poisson_interval
from hts_mlff.analysis.vacancy import rate_estimates
from hts_mlff.units import BOLTZMANN_EV_PER_K

BARRIER_EV, NU0_THZ = 0.025, 2.0
TEMPERATURES_K = np.array([35.0, 40.0, 45.0, 50.0, 55.0, 60.0])


def test_garwood_intervals_by_hand():
    low, high = poisson_interval(0, 10.0)
    assert low == 0.0 and high == pytest.approx(-np.log(0.025) / 10.0)  # 0.369 per unit exposure
    low, high = poisson_interval(5, 10.0)
    assert low == pytest.approx(stats.chi2.ppf(0.025, 10) / 20) and high == pytest.approx(
        stats.chi2.ppf(0.975, 12) / 20
    )
    assert np.isnan(poisson_interval(3, 0.0)[0])


def test_a_temperature_without_a_jump_has_an_upper_bound_not_zero():
    first = np.full(10, np.nan)  # 10 windows of 50 ps, no jump
    out = rate_estimates(first, np.full(10, 50_000.0), np.zeros(10), n_bootstrap=50)
    assert out["rate_mle_per_ps"] == 0.0 and out["rate_low_per_ps"] == 0.0
    assert out["rate_high_per_ps"] == pytest.approx(-np.log(0.025) / 500.0)
    assert out["rate_bootstrap_high_per_ps"] == 0.0  # what the bootstrap alone would say


def _windows(rng, rate_per_ps: float, *, n_windows: int, window_ps: float):
    """First-jump times (fs, NaN: none) and observed lengths of censored exponential windows."""
    first = rng.exponential(1.0 / rate_per_ps, size=n_windows)
    jumped = first < window_ps
    return np.where(jumped, first * 1000.0, np.nan), np.full(n_windows, window_ps * 1000.0), jumped.astype(float)


def _coverage(rng, *, n_windows: int, window_ps: float, repeats: int):
    rates = NU0_THZ * np.exp(-BARRIER_EV / (BOLTZMANN_EV_PER_K * TEMPERATURES_K))
    rate_hits, energy_hits, energy_tries, counts_seen = 0, 0, 0, []
    for _ in range(repeats):
        counts, exposures = [], []
        for r in rates:
            first, observed, jumped = _windows(rng, r, n_windows=n_windows, window_ps=window_ps)
            out = rate_estimates(first, observed, jumped, n_bootstrap=10)
            rate_hits += out["rate_low_per_ps"] <= r <= out["rate_high_per_ps"]
            counts.append(out["n_windows_with_jump"])
            exposures.append(out["exposure_mle_ps"])
        counts_seen.append(counts)
        fit = _poisson_fit(np.array(counts), np.array(exposures), TEMPERATURES_K, extrapolate_to_K=300, confidence=0.95)
        low, high = fit[1], fit[2]
        energy_tries += 1
        energy_hits += (np.isnan(low) or low <= BARRIER_EV) and (np.isnan(high) or BARRIER_EV <= high)
    return rate_hits / (repeats * len(rates)), energy_hits / energy_tries, np.array(counts_seen)


def test_sparse_regime_intervals_cover_the_truth():
    """10 windows × 50 ps per temperature: 0–5 jumps each, often none at the lowest T."""
    rng = np.random.default_rng(11)
    rate_cover, energy_cover, counts = _coverage(rng, n_windows=10, window_ps=50.0, repeats=150)
    assert counts.max() <= 10 and (counts[:, 0] == 0).mean() > 0.3  # the sparse regime indeed
    assert rate_cover >= 0.94  # exact intervals are conservative: ≥ 95 % up to sampling noise
    assert energy_cover >= 0.90


def test_rich_regime_intervals_cover_the_truth_and_shrink():
    rng = np.random.default_rng(12)
    rate_cover, energy_cover, counts = _coverage(rng, n_windows=100, window_ps=400.0, repeats=60)
    assert counts[:, 0].mean() > 10
    assert rate_cover >= 0.93 and energy_cover >= 0.88
    rng = np.random.default_rng(13)
    rates = NU0_THZ * np.exp(-BARRIER_EV / (BOLTZMANN_EV_PER_K * TEMPERATURES_K))
    widths = []
    for n_windows, window_ps in ((10, 50.0), (100, 400.0)):
        counts, exposures = [], []
        for r in rates:
            first, observed, jumped = _windows(rng, r, n_windows=n_windows, window_ps=window_ps)
            out = rate_estimates(first, observed, jumped, n_bootstrap=10)
            counts.append(out["n_windows_with_jump"])
            exposures.append(out["exposure_mle_ps"])
        fit = _poisson_fit(np.array(counts), np.array(exposures), TEMPERATURES_K, extrapolate_to_K=300, confidence=0.95)
        widths.append(fit[2] - fit[1])
    assert widths[1] < 0.5 * widths[0]
