r"""Rates from few events: exact Poisson intervals, and the Arrhenius fit as a Poisson likelihood.

A rate estimated from k events over an exposure E (time at risk, ps) is r̂ = k/E. With few
events a percentile bootstrap is useless (k = 0 gives the interval [0, 0]); the exact
(Garwood) interval of a Poisson count is

.. math:: r_\mathrm{low} = \frac{\chi^2_{\alpha/2}(2k)}{2E}, \qquad
          r_\mathrm{high} = \frac{\chi^2_{1-\alpha/2}(2k+2)}{2E}

(r_low = 0 for k = 0; r_high = −ln(α/2)/E then, 3.69/E at 95 %). It covers the true rate
with at least the stated probability for every rate (conservative, never too short).

**Arrhenius by likelihood.** Over temperatures T_i with counts k_i and exposures E_i, the
counts are Poisson with means μ_i = E_i ν₀ exp(−E_b / k_B T_i); the fit maximises
ℓ = Σ k_i ln μ_i − μ_i over (ln ν₀, E_b) — temperatures with no event contribute (through
their exposure) instead of being dropped, which a least-squares fit of ln r cannot do. ℓ is
jointly concave. Intervals are **profile-likelihood** intervals, {θ : 2(ℓ_max − ℓ_p(θ)) ≤
χ²₁(confidence)}, for E_b, for ν₀ and for the rate extrapolated to T* (``value_at_K``): they
are asymmetric where the data are sparse, and one-sided (NaN bound) where the data cannot
bound them. ``activation_energy_se_eV`` is from the curvature of the profile at its maximum;
``reduced_chi2`` is Pearson's Σ(k − μ)²/μ / (n − 2). Outputs are named as in
:mod:`hts_mlff.analysis.arrhenius` (ν₀ in 1/ps = THz).
"""

from __future__ import annotations

import numpy as np
import xarray as xr
from scipy import optimize, special, stats

from hts_mlff.analysis.arrhenius import ARRHENIUS_OUTPUTS, apply_fit
from hts_mlff.units import BOLTZMANN_EV_PER_K

#: E_b searched within this range (eV): wider than any barrier met by MD at accessible rates.
ENERGY_RANGE_EV = (-1.0, 5.0)


def poisson_interval(k: np.ndarray | float, exposure: np.ndarray | float, *, confidence: float = 0.95):
    """Exact (Garwood) interval of the rate k/exposure; arrays broadcast. Returns (low, high)."""
    k = np.asarray(k, dtype=float)
    exposure = np.asarray(exposure, dtype=float)
    alpha = 1.0 - confidence
    with np.errstate(divide="ignore", invalid="ignore"):
        low = np.where(k > 0, stats.chi2.ppf(alpha / 2, 2 * np.maximum(k, 1e-300)) / (2 * exposure), 0.0)
        high = stats.chi2.ppf(1 - alpha / 2, 2 * k + 2) / (2 * exposure)
    bad = ~(np.isfinite(exposure) & (exposure > 0) & np.isfinite(k))
    return np.where(bad, np.nan, low), np.where(bad, np.nan, high)


class _Likelihood:
    """ℓ(ln y, E) of Poisson counts with μ_i = E_i · y · exp(−E (x_i − x_ref)), x = 1/k_BT."""

    def __init__(self, k: np.ndarray, exposure: np.ndarray, x: np.ndarray) -> None:
        self.k, self.exposure, self.x = k, exposure, x
        self.total = float(k.sum())

    def at(self, log_y: float, energy: float, x_ref: float) -> float:
        d = self.x - x_ref
        log_mu = np.log(self.exposure) + log_y - energy * d
        with np.errstate(over="ignore"):
            return float(self.k @ log_mu - np.exp(log_mu).sum())

    def best_energy(self, log_y: float, x_ref: float) -> float:
        """argmax over E at fixed ln y (∂ℓ/∂E is decreasing in E: one root, or an end)."""
        d = self.x - x_ref
        target = float(self.k @ d)

        def slope(energy: float) -> float:
            with np.errstate(over="ignore"):
                return float(np.exp(log_y) * (self.exposure * d) @ np.exp(-energy * d)) - target

        lo, hi = ENERGY_RANGE_EV
        if slope(lo) <= 0:
            return lo
        if slope(hi) >= 0:
            return hi
        return optimize.brentq(slope, lo, hi, xtol=1e-12)

    def log_nu(self, energy: float) -> float:
        """ln ν̂₀ at fixed E_b (analytic: ν̂₀ = Σk / Σ E_i e^{−E x_i}, summed in log space)."""
        return float(np.log(self.total) - special.logsumexp(np.log(self.exposure) - energy * self.x))

    def profile_energy(self, energy: float) -> float:
        """max over ν₀ at fixed E_b."""
        if self.total == 0:
            return -np.inf
        value = self.at(self.log_nu(energy), energy, 0.0)
        return value if np.isfinite(value) else -np.inf

    def profile_log_y(self, log_y: float, x_ref: float) -> float:
        return self.at(log_y, self.best_energy(log_y, x_ref), x_ref)


def _bounds(profile, centre: float, top: float, drop: float, *, lo: float, hi: float) -> tuple[float, float]:
    """Where the profile has fallen by ``drop`` on each side of ``centre`` (NaN: not within [lo, hi])."""

    def f(v: float) -> float:
        return profile(v) - (top - drop)

    out = []
    for end in (lo, hi):
        try:
            out.append(optimize.brentq(f, min(centre, end), max(centre, end), xtol=1e-10) if f(end) < 0 else np.nan)
        except ValueError:
            out.append(np.nan)
    return out[0], out[1]


def _poisson_fit(
    k: np.ndarray,
    exposure: np.ndarray,
    temperature_K: np.ndarray,
    *,
    extrapolate_to_K: float,
    confidence: float,
) -> np.ndarray:
    """One fit: (n_T,) counts, exposures (ps) and temperatures → (len(ARRHENIUS_OUTPUTS),)."""
    good = np.isfinite(k) & np.isfinite(exposure) & (exposure > 0)
    out = np.full(len(ARRHENIUS_OUTPUTS), np.nan)
    out[10] = int(good.sum())
    if good.sum() < 2 or k[good].sum() == 0:
        return out
    like = _Likelihood(
        k[good].astype(float), exposure[good].astype(float), 1.0 / (BOLTZMANN_EV_PER_K * temperature_K[good])
    )
    lo, hi = ENERGY_RANGE_EV
    grid = np.linspace(lo, hi, 601)
    values = np.array([like.profile_energy(e) for e in grid])
    best = int(np.argmax(values))
    if best in (0, len(grid) - 1):  # the data do not bound E_b (e.g. events at one temperature only)
        return out
    result = optimize.minimize_scalar(
        lambda e: -like.profile_energy(e), bounds=(grid[best - 1], grid[best + 1]), method="bounded",
        options={"xatol": 1e-10},
    )  # fmt: skip
    energy, top = float(result.x), -float(result.fun)
    drop = stats.chi2.ppf(confidence, 1) / 2
    e_low, e_high = _bounds(like.profile_energy, energy, top, drop, lo=lo, hi=hi)
    if top - max(values[0], values[-1]) < 1e-6 * max(1.0, abs(top)):
        # the profile rises to a plateau at an end (e.g. events at one temperature only): the
        # maximum lies at infinity; only the one-sided bound is information
        out[1:3] = [e_low, e_high]
        return out
    log_nu = like.log_nu(energy)
    h = 1e-4
    curvature = (like.profile_energy(energy + h) - 2 * top + like.profile_energy(energy - h)) / h**2
    se = 1.0 / np.sqrt(-curvature) if curvature < 0 else np.nan
    nu_low, nu_high = _bounds(lambda v: like.profile_log_y(v, 0.0), log_nu, top, drop, lo=log_nu - 60, hi=log_nu + 60)
    x_star = 1.0 / (BOLTZMANN_EV_PER_K * extrapolate_to_K)
    log_star = log_nu - energy * x_star
    s_low, s_high = _bounds(
        lambda v: like.profile_log_y(v, x_star), log_star, top, drop, lo=log_star - 60, hi=log_star + 60
    )
    mu = like.exposure * np.exp(log_nu - energy * like.x)
    n = len(mu)
    out[:10] = [energy, e_low, e_high, se, np.exp(log_nu), np.exp(nu_low), np.exp(nu_high),
                np.exp(log_star), np.exp(s_low), np.exp(s_high)]  # fmt: skip
    out[11] = float(((like.k - mu) ** 2 / mu).sum() / (n - 2)) if n > 2 else np.nan
    return out


def poisson_arrhenius_fit(
    counts: xr.DataArray,
    exposure_ps: xr.DataArray,
    *,
    dim: str = "temperature_K",
    extrapolate_to_K: float = 300.0,
    confidence: float = 0.95,
) -> xr.Dataset:
    """Arrhenius fit of event counts over exposures by Poisson likelihood (module docstring).

    Args:
        counts: events per temperature (``dim`` coordinate in K), every other dim fitted alone.
        exposure_ps: time at risk per temperature, ps (same dims).

    Returns:
        The outputs of :func:`hts_mlff.analysis.arrhenius.arrhenius_fit` (rates in 1/ps).
    """
    temperature = counts[dim].astype(float)
    kwargs = {"extrapolate_to_K": extrapolate_to_K, "confidence": confidence}
    out = apply_fit(_poisson_fit, counts.astype(float), exposure_ps.astype(float), temperature, dim=dim, kwargs=kwargs)
    out.attrs = {"method": "poisson likelihood, profile intervals", "confidence": confidence,
                 "extrapolate_to_K": extrapolate_to_K}  # fmt: skip
    return out
