r"""Green–Kubo thermal conductivity from the stored heat current (reference for SED κ).

.. math::

    \kappa = \frac{1}{3 V k_B T^2} \int_0^{t_c} \langle \mathbf{J}(0)\cdot\mathbf{J}(t)\rangle\,dt

with J the extensive heat current of each trajectory (``heat_current_eV_A_per_fs``, eV·Å/fs;
:mod:`hts_mlff.engine.observers.heat_flux`), V its mean volume (Å³) and T its mean kinetic
temperature (K); κ in W/(m·K). The heat-current autocorrelation (HCACF) of each trajectory is
averaged over every time origin (FFT, unbiased: each lag divided by its number of origins).

The cut-off t_c: by default the first zero of the HCACF averaged over the seeds of a state
point (the "first dip" rule: past it the integrand is noise about zero, and integrating noise
only widens the interval); a fixed time can be given instead. Each seed gives one κ(t_c); the
state point's κ is their mean with a Student-t interval, so many short seeds (what the engine
does well) buy a tight interval. Production should run NVE: a Langevin thermostat damps the
current and lowers κ.

**Two-stage decomposition** (:func:`two_stage_decomposition`). The HCACF of a crystal of one
species decays in two stages — a fast drop within a fraction of a picosecond (local dynamics)
and a slow tail (phonon transport) — reported for LJ argon by Kaburaki, Li & Yip (MRS Proc. 538,
1999) and used by McGaughey & Kaviany (Int. J. Heat Mass Transfer 47, 1783, 2004) to split κ:

.. math::

    \frac{\langle \mathbf J(0)\cdot\mathbf J(t)\rangle}{3 V k_B T^2}
        \approx A_{sh} e^{-t/τ_{sh}} + A_{lg} e^{-t/τ_{lg}},\qquad
    κ = A_{sh}τ_{sh} + A_{lg}τ_{lg} = κ_{sh} + κ_{lg}.

Only the long-time part κ_lg is carried by modes that live picoseconds, so it — not the total —
is what a single-mode relaxation-time sum over phonon lifetimes (SED, seed eq. 9) can reproduce.
The fit is to the seed-mean integrand up to the same cut-off as κ; intervals are jackknife
(leave one seed out, refit) with Student-t factors.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import xarray as xr
from scipy import stats
from scipy.optimize import curve_fit

from hts_mlff.spec.model import STATE_POINT_AXES
from hts_mlff.units import BOLTZMANN_EV_PER_K, W_PER_M_K_PER_EV_PER_A_FS_K


def autocorrelation_rows(x: np.ndarray, max_lag: int) -> np.ndarray:
    """(…, n_t) real → (…, max_lag) ⟨x(0)x(t)⟩ averaged over every time origin (FFT, unbiased)."""
    n_t = x.shape[-1]
    size = 1 << int(np.ceil(np.log2(2 * n_t)))
    spectrum = np.fft.rfft(x, n=size, axis=-1)
    acf = np.fft.irfft((spectrum * spectrum.conj()).real, n=size, axis=-1)[..., :max_lag]
    return acf / (n_t - np.arange(max_lag))


def vector_autocorrelation(x: np.ndarray, max_lag: int) -> np.ndarray:
    """(n_traj, n_t, 3) → (n_traj, max_lag) ⟨x(0)·x(t)⟩/3, unbiased over time origins (NaN rows kept NaN)."""
    acf = autocorrelation_rows(np.nan_to_num(x).transpose(0, 2, 1), max_lag).sum(1) / 3.0
    acf[np.isnan(x).any(axis=(1, 2))] = np.nan
    return acf


def heat_current_autocorrelation(ds: xr.Dataset, *, max_lag_fs: float | None = None) -> xr.DataArray:
    """(traj, lag_fs) HCACF ⟨J(0)·J(t)⟩/3 in (eV·Å/fs)², from ``heat_current_eV_A_per_fs``.

    ``max_lag_fs`` defaults to half the production (longer lags have too few origins).
    """
    current = ds["heat_current_eV_A_per_fs"].transpose("traj", "time_fs", "xyz")
    time_fs = np.asarray(current["time_fs"].values, dtype=float)
    dt = float(time_fs[1] - time_fs[0])
    n_lag = len(time_fs) // 2 if max_lag_fs is None else min(len(time_fs), int(max_lag_fs / dt) + 1)
    values = vector_autocorrelation(np.asarray(current.values, dtype=float), n_lag)
    return xr.DataArray(
        values,
        dims=("traj", "lag_fs"),
        coords={"lag_fs": np.arange(n_lag) * dt, **{k: v for k, v in current["traj"].coords.items()}},
        attrs={"long_name": "heat-current autocorrelation ⟨J(0)·J(t)⟩/3", "units": "(eV·Å/fs)^2"},
    )


def running_kappa(ds: xr.Dataset, hcacf: xr.DataArray) -> xr.DataArray:
    """(traj, lag_fs) κ(t) = 1/(V k_B T²) ∫₀ᵗ HCACF in W/(m·K) (trapezoid), V and T per trajectory."""
    volume = ds["volume_A3"].mean("time_fs")
    temperature = ds["kinetic_temperature_K"].mean("time_fs")
    dt = float(hcacf["lag_fs"].values[1] - hcacf["lag_fs"].values[0]) if hcacf.sizes["lag_fs"] > 1 else 0.0
    trapezoids = 0.5 * (hcacf.values[:, 1:] + hcacf.values[:, :-1]) * dt
    integral = np.concatenate([np.zeros((hcacf.sizes["traj"], 1)), np.cumsum(trapezoids, axis=1)], axis=1)
    scale = W_PER_M_K_PER_EV_PER_A_FS_K / (volume.values * BOLTZMANN_EV_PER_K * temperature.values**2)
    out = hcacf.copy(data=integral * scale[:, None])
    out.attrs = {"long_name": "running Green–Kubo thermal conductivity", "units": "W/(m·K)"}
    return out


def first_zero_fs(hcacf_mean: np.ndarray, lag_fs: np.ndarray) -> float:
    """Lag of the first non-positive value of a (seed-averaged) HCACF; the last lag if none."""
    below = np.flatnonzero(hcacf_mean <= 0)
    return float(lag_fs[below[0]] if below.size else lag_fs[-1])


def green_kubo_kappa(
    ds: xr.Dataset,
    *,
    cutoff_fs: float | None = None,
    max_lag_fs: float | None = None,
    by: tuple[str, ...] = STATE_POINT_AXES,
    confidence: float = 0.95,
    hcacf: xr.DataArray | None = None,
) -> xr.Dataset:
    """κ per trajectory and per state point, with the cut-off used.

    Args:
        ds: a campaign dataset with ``heat_current_eV_A_per_fs`` (``analyses: [heat_flux]``).
        cutoff_fs: integrate the HCACF to this lag; None: the first zero of the seed-averaged
            HCACF of each state point.
        by: trajectory coordinates that define a state point (its seeds are pooled).
        hcacf: :func:`heat_current_autocorrelation` of ``ds`` when the caller already has it.

    Returns:
        Dataset over the ``by`` dims with ``kappa_W_per_mK`` (mean over seeds), ``kappa_sem``,
        ``kappa_low``/``kappa_high`` (Student-t interval), ``n_seeds`` and ``cutoff_fs``. The
        curves behind it: :func:`heat_current_autocorrelation` and :func:`running_kappa`.
    """
    hcacf = heat_current_autocorrelation(ds, max_lag_fs=max_lag_fs) if hcacf is None else hcacf
    running = running_kappa(ds, hcacf)
    lag = hcacf["lag_fs"].values
    frame = pd.DataFrame({name: np.asarray(hcacf[name].values) for name in by})
    rows = []
    for key, members in frame.groupby(list(by)).groups.items():
        index = np.asarray(list(members))
        ok = index[np.isfinite(hcacf.values[index]).all(axis=1)]
        if ok.size == 0:
            continue
        cut = first_zero_fs(hcacf.values[ok].mean(0), lag) if cutoff_fs is None else float(cutoff_fs)
        at = int(np.clip(np.searchsorted(lag, cut), 0, len(lag) - 1))
        kappa = running.values[ok, at]
        n = kappa.size
        mean = float(kappa.mean())
        sem = float(kappa.std(ddof=1) / np.sqrt(n)) if n > 1 else np.nan
        half = float(stats.t.ppf(0.5 + confidence / 2, n - 1) * sem) if n > 1 else np.nan
        keys = key if isinstance(key, tuple) else (key,)
        rows.append(
            {
                **dict(zip(by, keys, strict=True)),
                "kappa_W_per_mK": mean,
                "kappa_sem": sem,
                "kappa_low": mean - half,
                "kappa_high": mean + half,
                "n_seeds": n,
                "cutoff_fs": float(lag[at]),
            }
        )
    if not rows:
        raise ValueError("no complete trajectory with a heat current: run the campaign with analyses: [heat_flux]")
    out = xr.Dataset.from_dataframe(pd.DataFrame(rows).set_index(list(by)))
    out["kappa_W_per_mK"].attrs = {"long_name": "Green–Kubo thermal conductivity", "units": "W/(m·K)"}
    out.attrs["confidence"] = confidence
    return out


def _kappa_scale(ds: xr.Dataset) -> np.ndarray:
    """(traj,) W/(m·K) per (eV·Å/fs)²·fs: 1/(V k_B T²) with each trajectory's mean V and T."""
    volume = ds["volume_A3"].mean("time_fs").values
    temperature = ds["kinetic_temperature_K"].mean("time_fs").values
    return W_PER_M_K_PER_EV_PER_A_FS_K / (volume * BOLTZMANN_EV_PER_K * temperature**2)


def _two_exponentials(t: np.ndarray, log_a1: float, log_t1: float, log_a2: float, log_t2: float) -> np.ndarray:
    return np.exp(log_a1 - t / np.exp(log_t1)) + np.exp(log_a2 - t / np.exp(log_t2))


def fit_two_stages(lag_fs: np.ndarray, integrand: np.ndarray, *, start: np.ndarray | None = None) -> np.ndarray:
    """Fit A₁e^{−t/τ₁} + A₂e^{−t/τ₂} (τ₁ < τ₂) to a decaying curve; returns (A₁, τ₁, A₂, τ₂), NaN
    if the fit fails. ``start``: an earlier fit of a similar curve (jackknife refits)."""
    t, y = np.asarray(lag_fs, dtype=float), np.asarray(integrand, dtype=float)
    if start is None or not np.all(np.isfinite(start)):
        y0 = y[0]
        if not y0 > 0:
            return np.full(4, np.nan)
        below = np.flatnonzero(y <= 0.5 * y0)
        t_half = float(t[below[0]]) if below.size else float(t[-1])
        tau1 = max(t_half / np.log(2.0), float(t[1] - t[0]))
        area = float(np.sum(0.5 * (y[1:] + y[:-1]) * np.diff(t)))
        tau2 = max(5.0 * tau1, (area - 0.8 * y0 * tau1) / (0.2 * y0))
        start = np.array([0.8 * y0, tau1, 0.2 * y0, tau2])
    p0 = np.log(np.clip(start, 1e-300, None))
    try:
        with np.errstate(all="ignore"):
            params, _ = curve_fit(_two_exponentials, t, y, p0=p0, maxfev=5000)
    except (RuntimeError, ValueError):
        return np.full(4, np.nan)
    a1, t1, a2, t2 = np.exp(params)
    if t1 > t2:
        a1, t1, a2, t2 = a2, t2, a1, t1
    out = np.array([a1, t1, a2, t2])
    return out if np.all(np.isfinite(out)) else np.full(4, np.nan)


def two_stage_decomposition(
    ds: xr.Dataset,
    *,
    hcacf: xr.DataArray | None = None,
    fit_to_fs: float | None = None,
    by: tuple[str, ...] = STATE_POINT_AXES,
    confidence: float = 0.95,
) -> xr.Dataset:
    """κ split into its short- and long-time parts per state point (module docstring).

    Args:
        ds: as for :func:`green_kubo_kappa`.
        hcacf: :func:`heat_current_autocorrelation` of ``ds`` when the caller has it.
        fit_to_fs: fit the lags up to this one; None: the first zero of the seed-mean HCACF.

    Returns:
        Dataset over the ``by`` dims: ``kappa_short_W_per_mK``, ``kappa_long_W_per_mK`` (each
        with ``…_low``/``…_high``), ``tau_short_fs``, ``tau_long_fs``, ``kappa_fit_W_per_mK``
        (κ_sh + κ_lg), ``fit_to_fs``, ``split_resolved`` and ``n_seeds``. A fitted τ_lg longer
        than the fitted lags is not fixed by the data (the HCACF has not decayed within the
        record): the κ parts are NaN and ``split_resolved`` False (τ's still reported).
    """
    hcacf = heat_current_autocorrelation(ds) if hcacf is None else hcacf
    integrand = hcacf.values * _kappa_scale(ds)[:, None]  # W/(m·K) per fs
    lag = hcacf["lag_fs"].values
    frame = pd.DataFrame({name: np.asarray(hcacf[name].values) for name in by})
    rows = []
    for key, members in frame.groupby(list(by)).groups.items():
        index = np.asarray(list(members))
        curves = integrand[index[np.isfinite(integrand[index]).all(axis=1)]]
        n = len(curves)
        if n == 0:
            continue
        mean = curves.mean(0)
        cut = first_zero_fs(mean, lag) if fit_to_fs is None else float(fit_to_fs)
        window = slice(0, int(np.clip(np.searchsorted(lag, cut), 2, len(lag) - 1)) + 1)
        fit = fit_two_stages(lag[window], mean[window])
        # a slow time beyond the fitted lags is an extrapolation the data do not fix (the HCACF
        # has not decayed within the record): no split then
        resolved = bool(np.all(np.isfinite(fit)) and fit[3] <= lag[window.stop - 1])
        kappas = np.array([fit[0] * fit[1], fit[2] * fit[3]]) if resolved else np.full(2, np.nan)
        spread = np.full(2, np.nan)
        if n > 2 and resolved:
            others = [(mean * n - curves[i]) / (n - 1) for i in range(n)]
            refits = np.array([fit_two_stages(lag[window], o[window], start=fit) for o in others])
            leave_out = np.stack([refits[:, 0] * refits[:, 1], refits[:, 2] * refits[:, 3]], axis=1)
            spread = np.sqrt((n - 1) / n * np.nansum((leave_out - np.nanmean(leave_out, 0)) ** 2, axis=0))
        half = (float(stats.t.ppf(0.5 + confidence / 2, n - 1)) if n > 1 else np.nan) * spread
        keys = key if isinstance(key, tuple) else (key,)
        rows.append(
            {
                **dict(zip(by, keys, strict=True)),
                "kappa_short_W_per_mK": kappas[0],
                "kappa_short_low": kappas[0] - half[0],
                "kappa_short_high": kappas[0] + half[0],
                "kappa_long_W_per_mK": kappas[1],
                "kappa_long_low": kappas[1] - half[1],
                "kappa_long_high": kappas[1] + half[1],
                "tau_short_fs": fit[1],
                "tau_long_fs": fit[3],
                "kappa_fit_W_per_mK": kappas.sum(),
                "fit_to_fs": float(lag[window.stop - 1]),
                "split_resolved": resolved,
                "n_seeds": n,
            }
        )
    if not rows:
        raise ValueError("no complete trajectory with a heat current: run the campaign with analyses: [heat_flux]")
    out = xr.Dataset.from_dataframe(pd.DataFrame(rows).set_index(list(by)))
    out["kappa_long_W_per_mK"].attrs = {
        "long_name": "long-time (phonon) part of the Green–Kubo κ, A_lg τ_lg",
        "units": "W/(m·K)",
    }
    out["kappa_short_W_per_mK"].attrs = {
        "long_name": "short-time part of the Green–Kubo κ, A_sh τ_sh",
        "units": "W/(m·K)",
    }
    out.attrs["confidence"] = confidence
    return out
