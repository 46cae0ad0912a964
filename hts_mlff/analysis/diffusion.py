r"""Mean-squared displacement and self-diffusion coefficients from stored unwrapped positions.

Seeds: transferability paper appendix A.1 (eq. 6–7), GraNNField (diffusivity from the MSD of
the mobile ion).

.. math::

    \mathrm{MSD}(\tau) = \Big\langle \frac1N \sum_i \lvert \mathbf r_i(t+\tau) - \mathbf r_i(t) \rvert^2 \Big\rangle_t,
    \qquad \mathrm{MSD}(\tau) \to 6 D \tau \ (3\text{D}),

averaged over every time origin t (computed for all lags at once with FFTs, O(T log T) per
atom). Positions are the engine's unwrapped positions; by default the centre-of-mass
displacement of each frame is removed first (a Langevin thermostat lets the centre of mass
random-walk).

**Fit window ("auto").** The diffusive regime starts where the local slope
d ln MSD / d ln τ first reaches 0.9 (after the ballistic and caging regimes), and no earlier
than 1 ps (the seeds analyse t > 1 ps); it ends at half the trajectory, beyond which few time
origins remain. D is the slope of a least-squares line over the window, divided by 6.

**Uncertainty.** ``diffusion_coefficient`` also returns a block estimate per trajectory (the
trajectory cut in ``n_blocks`` blocks, D fitted in each, standard error of their mean);
``mean_over_seeds`` gives the mean and standard error over independent trajectories.

Units: positions Å, times fs; D in Å²/fs and cm²/s (1 Å²/fs = 0.1 cm²/s).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import xarray as xr

from hts_mlff.units import BOLTZMANN_EV_PER_K, CM2_PER_S_PER_A2_PER_FS, ELEMENTARY_CHARGE_C

#: ξ of the Yeh–Hummer correction for a cubic periodic box (Yeh & Hummer 2004).
YEH_HUMMER_XI = 2.837297


def _msd_fft(x: np.ndarray) -> np.ndarray:
    """MSD over all time origins of (T, n, 3) trajectories → (T,) averaged over atoms (NaN atoms skipped)."""
    n_t = x.shape[0]
    good = np.isfinite(x).all(axis=(0, 2))
    if not good.any():
        return np.full(n_t, np.nan)
    x = x[:, good]
    sq = np.sum(x * x, axis=2)  # (T, n)
    # S1(m) = (1/(T−m)) Σ_t [x(t)² + x(t+m)²] computed by a running sum.
    sum_sq = 2.0 * sq.sum(axis=0)
    s1 = np.empty((n_t, sq.shape[1]))
    running = sum_sq.copy()
    for m in range(n_t):
        s1[m] = running / (n_t - m)
        if m < n_t - 1:
            running -= sq[m] + sq[n_t - 1 - m]
    size = 1 << int(np.ceil(np.log2(2 * n_t)))
    spectrum = np.fft.rfft(x, n=size, axis=0)
    auto = np.fft.irfft(spectrum * spectrum.conj(), n=size, axis=0)[:n_t].sum(axis=2)  # Σ_t x(t)·x(t+m)
    s2 = auto / (n_t - np.arange(n_t))[:, None]
    return np.mean(s1 - 2.0 * s2, axis=1)


def msd(
    positions: xr.DataArray,
    *,
    atom_mask: xr.DataArray | None = None,
    remove_com_drift: bool = True,
) -> xr.DataArray:
    """Mean-squared displacement over all time origins.

    Args:
        positions: (…, position_time_fs, atom, xyz) unwrapped positions in Å (NaN atoms ignored).
        atom_mask: (…, atom) bool, the atoms to average over (e.g. one species); default all.
        remove_com_drift: subtract the mean displacement of all atoms of each frame first.

    Returns:
        (…, lag_fs) MSD in Å²; lazy when ``positions`` is.
    """
    time = positions["position_time_fs"].values
    lag = time - time[0]
    data = positions
    if remove_com_drift:
        data = data - data.mean("atom", skipna=True)
    if atom_mask is not None:
        data = data.where(atom_mask)

    def one(block: np.ndarray) -> np.ndarray:
        lead = block.shape[:-3]
        flat = block.reshape((-1, *block.shape[-3:]))
        out = np.stack([_msd_fft(x) for x in flat]) if flat.shape[0] else np.empty((0, block.shape[-3]))
        return out.reshape((*lead, block.shape[-3]))

    result = xr.apply_ufunc(
        one,
        data,
        input_core_dims=[["position_time_fs", "atom", "xyz"]],
        output_core_dims=[["lag_fs"]],
        dask="parallelized",
        output_dtypes=[float],
        dask_gufunc_kwargs={"output_sizes": {"lag_fs": len(lag)}},
    )
    result = result.assign_coords(lag_fs=lag)
    result.attrs = {"units": "Å^2", "long_name": "mean-squared displacement"}
    return result


def auto_fit_window(lag_fs: np.ndarray, msd_A2: np.ndarray, *, min_start_fs: float = 1000.0) -> tuple[float, float]:
    """(start, stop) in fs of the diffusive regime of one MSD curve (see the module docstring)."""
    stop = lag_fs[-1] / 2.0
    good = (lag_fs > 0) & np.isfinite(msd_A2) & (msd_A2 > 0)
    t, m = lag_fs[good], msd_A2[good]
    start = min_start_fs
    if len(t) >= 3:
        slope = np.gradient(np.log(m), np.log(t))
        diffusive = np.flatnonzero((slope >= 0.9) & (t >= min_start_fs))
        if diffusive.size:
            start = float(t[diffusive[0]])
    if start >= stop:
        start = min(min_start_fs, stop / 2.0)
    return float(start), float(stop)


def _fit_slope(lag_fs: np.ndarray, msd_A2: np.ndarray, start: float, stop: float) -> float:
    inside = (lag_fs >= start) & (lag_fs <= stop) & np.isfinite(msd_A2)
    if inside.sum() < 2:
        return float("nan")
    slope, _ = np.polyfit(lag_fs[inside], msd_A2[inside], 1)
    return float(slope)


def diffusion_coefficient(
    msd_A2: xr.DataArray,
    *,
    fit_window_fs: tuple[float, float] | None = None,
    dimensions: int = 3,
) -> xr.Dataset:
    """D from the slope of the MSD in its diffusive regime, per curve.

    Args:
        msd_A2: (…, lag_fs) from :func:`msd`.
        fit_window_fs: (start, stop) lags in fs; default: the automatic window.
        dimensions: d in MSD = 2 d D τ.

    Returns:
        Dataset over the leading dims: ``D_A2_per_fs``, ``D_cm2_per_s``, ``fit_start_fs``,
        ``fit_stop_fs``.
    """
    lag = msd_A2["lag_fs"].values

    def one(curve: np.ndarray) -> np.ndarray:
        start, stop = fit_window_fs if fit_window_fs is not None else auto_fit_window(lag, curve)
        return np.array([_fit_slope(lag, curve, start, stop) / (2 * dimensions), start, stop])

    def many(block: np.ndarray) -> np.ndarray:
        flat = block.reshape(-1, block.shape[-1])
        out = np.stack([one(c) for c in flat]) if flat.shape[0] else np.empty((0, 3))
        return out.reshape((*block.shape[:-1], 3))

    fitted = xr.apply_ufunc(
        many,
        msd_A2,
        input_core_dims=[["lag_fs"]],
        output_core_dims=[["fit_value"]],
        dask="parallelized",
        output_dtypes=[float],
        dask_gufunc_kwargs={"output_sizes": {"fit_value": 3}},
    )
    d = fitted.isel(fit_value=0)
    out = xr.Dataset(
        {
            "D_A2_per_fs": d.assign_attrs(units="Å^2/fs"),
            "D_cm2_per_s": (d * CM2_PER_S_PER_A2_PER_FS).assign_attrs(units="cm^2/s"),
            "fit_start_fs": fitted.isel(fit_value=1).assign_attrs(units="fs"),
            "fit_stop_fs": fitted.isel(fit_value=2).assign_attrs(units="fs"),
        }
    )
    return out.drop_vars("fit_value", errors="ignore")


def block_diffusion(
    positions: xr.DataArray,
    *,
    n_blocks: int = 4,
    atom_mask: xr.DataArray | None = None,
    fit_window_fs: tuple[float, float] | None = None,
) -> xr.Dataset:
    """D per trajectory with a block error: mean and standard error of D over ``n_blocks`` blocks."""
    n_t = positions.sizes["position_time_fs"]
    size = n_t // n_blocks
    if size < 4:
        raise ValueError(f"{n_t} frames cannot make {n_blocks} blocks of at least 4 frames")
    values = []
    for b in range(n_blocks):
        block = positions.isel(position_time_fs=slice(b * size, (b + 1) * size))
        block = block.assign_coords(position_time_fs=block["position_time_fs"] - block["position_time_fs"][0])
        values.append(
            diffusion_coefficient(msd(block, atom_mask=atom_mask), fit_window_fs=fit_window_fs)["D_cm2_per_s"]
        )
    stacked = xr.concat(values, dim="block")
    return xr.Dataset(
        {
            "D_cm2_per_s": stacked.mean("block").assign_attrs(units="cm^2/s"),
            "D_block_sem_cm2_per_s": (stacked.std("block", ddof=1) / math.sqrt(n_blocks)).assign_attrs(units="cm^2/s"),
        }
    )


def mean_over_seeds(values: xr.DataArray, *, by: list[str]) -> xr.Dataset:
    """Mean, standard error and count over the trajectories sharing the values of ``by``.

    Args:
        values: (traj,) e.g. ``D_cm2_per_s``; ``by`` names sweep axes or other traj coordinates.

    Returns:
        Dataset with ``mean``, ``sem``, ``n`` over the dims ``by``.
    """
    frame = pd.DataFrame({"value": np.asarray(values.values, dtype=float)})
    for name in by:
        frame[name] = np.asarray(values[name].values)
    grouped = frame.groupby(by)["value"]
    table = pd.DataFrame({"mean": grouped.mean(), "sem": grouped.sem(), "n": grouped.count()})
    return xr.Dataset.from_dataframe(table)


def yeh_hummer_correction(
    D_cm2_per_s: xr.DataArray | float,
    *,
    temperature_K: xr.DataArray | float,
    viscosity_Pa_s: float,
    box_length_A: xr.DataArray | float,
) -> xr.DataArray | float:
    r"""Finite-size correction of a periodic cubic box (Yeh & Hummer 2004):

    .. math:: D_\infty = D_\text{PBC} + \frac{\xi k_B T}{6 \pi \eta L}, \quad \xi = 2.837297.

    Args:
        D_cm2_per_s: diffusion coefficient in the periodic box.
        temperature_K: temperature. viscosity_Pa_s: shear viscosity η of the fluid (Pa·s).
        box_length_A: edge L of the cubic box.
    """
    kT_J = BOLTZMANN_EV_PER_K * temperature_K * ELEMENTARY_CHARGE_C
    correction_m2_per_s = YEH_HUMMER_XI * kT_J / (6 * math.pi * viscosity_Pa_s * box_length_A * 1e-10)
    return D_cm2_per_s + correction_m2_per_s * 1e4
