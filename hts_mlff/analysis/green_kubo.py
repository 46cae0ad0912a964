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
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import xarray as xr
from scipy import stats

from hts_mlff.spec.model import STATE_POINT_AXES
from hts_mlff.units import BOLTZMANN_EV_PER_K, W_PER_M_K_PER_EV_PER_A_FS_K


def _autocorrelation(x: np.ndarray, max_lag: int) -> np.ndarray:
    """(n_traj, n_t, 3) → (n_traj, max_lag) ⟨x(0)·x(t)⟩/3, unbiased over time origins (NaN rows kept NaN)."""
    n_t = x.shape[1]
    size = 1 << int(np.ceil(np.log2(2 * n_t)))
    spectrum = np.fft.rfft(np.nan_to_num(x), n=size, axis=1)
    acf = np.fft.irfft((spectrum * spectrum.conj()).real, n=size, axis=1)[:, :max_lag].sum(-1) / 3.0
    acf /= (n_t - np.arange(max_lag))[None, :]
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
    values = _autocorrelation(np.asarray(current.values, dtype=float), n_lag)
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
