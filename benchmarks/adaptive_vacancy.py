"""Adaptive vs uniform allocation of vacancy windows: atom-steps to reach a target E_b interval.

Synthetic vacancy jumps (no MD): censored exponential first-jump times per window, rates
r(T) = ν₀ exp(−E_b/k_BT) with E_b = 25 meV and ν₀ = 2 THz over 35–60 K, windows of 50 ps,
10 windows per temperature to start. Each round adds ``--batch`` windows, either all at the
temperature that :func:`hts_mlff.schedule.adaptive.allocation_scores` picks (the campaign's
adaptive rule) or spread evenly over the temperatures (uniform), and refits by Poisson
likelihood (:func:`hts_mlff.analysis.poisson._poisson_fit`) until the 95 % E_b interval is
narrower than ``--target-meV``. Every window costs the same atom-steps, so windows count cost.
Prints the median windows of both strategies over ``--repeats`` draws, their ratio, and how
often each interval covers the true E_b.

    python benchmarks/adaptive_vacancy.py [--target-meV 6] [--batch 12] [--repeats 40]
"""

from __future__ import annotations

import argparse

import numpy as np

from hts_mlff.analysis.poisson import _poisson_fit
from hts_mlff.schedule.adaptive import allocation_scores
from hts_mlff.units import BOLTZMANN_EV_PER_K

TEMPERATURES_K = np.array([35.0, 40.0, 45.0, 50.0, 55.0, 60.0])
BARRIER_EV, NU0_THZ, WINDOW_PS = 0.025, 2.0, 50.0
RATES = NU0_THZ * np.exp(-BARRIER_EV / (BOLTZMANN_EV_PER_K * TEMPERATURES_K))


def _draw(rng, n: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Events and exposure (ps) of n[i] new windows at each temperature."""
    counts, exposure = np.zeros(len(n)), np.zeros(len(n))
    for i, k in enumerate(n):
        first = rng.exponential(1.0 / RATES[i], size=int(k))
        counts[i] = (first < WINDOW_PS).sum()
        exposure[i] = np.minimum(first, WINDOW_PS).sum()
    return counts, exposure


def run(rng, *, adaptive: bool, target_eV: float, batch: int, max_rounds: int = 400) -> tuple[int, bool]:
    """Windows used until the target (or the round limit), and whether the final interval covers E_b."""
    windows = np.full(len(TEMPERATURES_K), 10)
    counts, exposure = _draw(rng, windows)
    for _ in range(max_rounds):
        fit = _poisson_fit(counts, exposure, TEMPERATURES_K, extrapolate_to_K=300.0, confidence=0.95)
        width = fit[2] - fit[1]
        if np.isfinite(width) and width <= target_eV:
            return int(windows.sum()), bool(fit[1] <= BARRIER_EV <= fit[2])
        add = np.zeros(len(windows), dtype=int)
        if adaptive:
            add[int(np.nanargmax(allocation_scores(counts, exposure, TEMPERATURES_K)))] = batch
        else:
            add[:] = batch // len(windows)
            add[: batch % len(windows)] += 1
        c, e = _draw(rng, add)
        counts, exposure, windows = counts + c, exposure + e, windows + add
    return int(windows.sum()), False


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--target-meV", type=float, default=6.0)
    parser.add_argument("--batch", type=int, default=12)
    parser.add_argument("--repeats", type=int, default=40)
    args = parser.parse_args()
    rng = np.random.default_rng(2026)
    results = {}
    target_eV = args.target_meV * 1e-3
    for name, adaptive in (("uniform", False), ("adaptive", True)):
        runs = [run(rng, adaptive=adaptive, target_eV=target_eV, batch=args.batch) for _ in range(args.repeats)]
        used = np.array([r[0] for r in runs])
        covered = 100 * np.mean([r[1] for r in runs])
        results[name] = np.median(used)
        quartiles = f"{np.percentile(used, 25):.0f}–{np.percentile(used, 75):.0f}"
        print(f"{name:9s}: median {results[name]:.0f} windows (quartiles {quartiles}); E_b covered in {covered:.0f} %")
    print(f"adaptive / uniform atom-steps: {results['adaptive'] / results['uniform']:.2f}")


if __name__ == "__main__":
    main()
