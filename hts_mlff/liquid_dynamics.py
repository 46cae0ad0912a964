"""Computational XPCS of a campaign store per state point: g₂, Γ(q), optical contrast, F_s.

The ``hts-mlff xpcs`` command is a thin shell around :func:`xpcs_study`. For every state point
(force field, system, temperature, pressure) the trajectories of its seeds are analysed in
one q shell (the seeds': 1.844 ± 0.029 Å⁻¹) and over a q grid for the dispersion:

- g₂(q, τ) per seed and their mean (eq. 17; :mod:`hts_mlff.analysis.xpcs`), Γ and β from the
  seed-averaged curve with a leave-one-seed-out jackknife error;
- β_Δ(q) against the pulse width and the correlation time (β_Δ at half its short-pulse value),
  jackknifed the same way;
- Γ(q) of g₂ (collective) and Γ_s(q) of the self part F_s(q, τ) on the q grid; D from the
  package's MSD (:mod:`hts_mlff.analysis.diffusion`) gives the D q² line that Γ_s(q) meets at
  small q.

Each trajectory's density modes are computed lazily from the stored positions (only
(T, n_vectors) numbers are kept); a shell without allowed vectors for a cell is an error that
names the shell and the cell's smallest |q|.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import xarray as xr

from hts_mlff.analysis.diffusion import diffusion_coefficient, msd
from hts_mlff.analysis.scattering import density_modes, self_intermediate_scattering
from hts_mlff.analysis.xpcs import correlation_time, decay_rate_of_self_part, fit_decay_rate, g2, optical_contrast

#: Axes of a state point (seeds and windows are its samples).
STATE_POINT_AXES = ("forcefield", "system", "temperature_K", "pressure_bar")

#: The seeds' shell (transferability paper §3.3).
SEED_Q_PER_A = 1.844
SEED_WIDTH_PER_A = 0.058


@dataclass
class XpcsStudy:
    """Per state point (``group`` MultiIndex over force field, system, T, P).

    Attributes:
        g2: (group, lag_fs) seed mean; ``g2_sem`` its standard error over seeds.
        fits: (group) Γ (1/ps), β, baseline with jackknife errors, n_seeds.
        contrast: (group, pulse_width_fs) β_Δ seed mean; correlation time (fs) with its error in ``fits``.
        dispersion: (group, q_per_A) over shell centres: the mean |q| of the allowed vectors used,
            Γ(q) and Γ_s(q) (1/ps) with errors, and D⟨q²⟩ (1/ps, D from the MSD, ⟨q²⟩ over the
            vectors of the self part).
    """

    g2: xr.Dataset
    fits: xr.Dataset
    contrast: xr.DataArray
    dispersion: xr.Dataset


def _groups(ds: xr.Dataset) -> dict[tuple, list[int]]:
    index = ds.indexes["traj"]
    status = ds["status"].to_numpy() if "status" in ds else np.full(ds.sizes["traj"], "done")
    groups: dict[tuple, list[int]] = {}
    for k in range(ds.sizes["traj"]):
        if status[k] != "done":
            continue
        key = tuple(index.get_level_values(axis)[k] for axis in STATE_POINT_AXES)
        groups.setdefault(key, []).append(k)
    if not groups:
        raise ValueError("no finished trajectory in the store")
    return groups


def _jackknife(curves: np.ndarray, estimate) -> tuple[np.ndarray, np.ndarray]:
    """(estimate on the mean of all curves, jackknife standard error over leave-one-out means)."""
    full = np.asarray(estimate(np.nanmean(curves, axis=0)), dtype=float)
    n = len(curves)
    if n < 2:
        return full, np.full_like(full, np.nan)
    total = np.nansum(curves, axis=0)
    leave = np.array([estimate((total - curves[i]) / (n - 1)) for i in range(n)], dtype=float)
    return full, np.sqrt((n - 1) / n * np.sum((leave - leave.mean(axis=0)) ** 2, axis=0))


def _fit_values(curve: np.ndarray, lag: np.ndarray, window: tuple[float, float]) -> np.ndarray:
    fit = fit_decay_rate(xr.DataArray(curve, dims=("lag_fs",), coords={"lag_fs": lag}), window=window)
    return np.array([float(fit[name][0]) for name in ("gamma_per_ps", "beta", "baseline")])


def _self_rate(curve: np.ndarray, lag: np.ndarray) -> float:
    return float(
        decay_rate_of_self_part(xr.DataArray(curve, dims=("lag_fs",), coords={"lag_fs": lag}))["gamma_per_ps"][0]
    )


def xpcs_study(
    ds: xr.Dataset,
    *,
    q_per_A: float = SEED_Q_PER_A,
    width_per_A: float = SEED_WIDTH_PER_A,
    q_grid_per_A: list[float] | np.ndarray | None = None,
    pulse_frames: list[int] | np.ndarray | None = None,
    max_lag_fs: float | None = None,
    max_vectors: int = 64,
    window: tuple[float, float] = (0.05, 0.5),
) -> XpcsStudy:
    """g₂, Γ, contrast and the dispersion of every state point of ``ds`` (see the module doc).

    Args:
        q_per_A, width_per_A: the main shell.
        q_grid_per_A: shell centres of the dispersion (default 0.6–3.0 Å⁻¹ every 0.2), each
            of width ``width_per_A``; shells a cell does not reach are skipped for that cell.
        pulse_frames: pulse widths in stored frames (default 1, 2, 3, … up to a quarter run).
        max_lag_fs: longest lag (default half the run).
        max_vectors: pixels per shell.
    """
    times = ds["position_time_fs"].to_numpy()
    n_t = len(times)
    if n_t < 8:
        raise ValueError(
            f"{n_t} stored frames: XPCS needs a trajectory of stored positions (save_positions_every_samples)"
        )
    if pulse_frames is None:
        pulse_frames = np.unique(np.round(np.geomspace(1, max(n_t // 4, 2), 24)).astype(int))
    pulse_frames = np.asarray(pulse_frames, dtype=int)
    q_grid = np.arange(0.6, 3.01, 0.2) if q_grid_per_A is None else np.asarray(q_grid_per_A, dtype=float)
    groups = _groups(ds)
    keys = list(groups)

    g2_mean, g2_sem, fit_rows, contrast_mean, dispersion_rows = [], [], [], [], []
    for key in keys:
        rows = groups[key]
        sub = ds.isel(traj=rows)
        modes = density_modes(sub, q_per_A=q_per_A, width_per_A=width_per_A, max_vectors=max_vectors)
        curves = g2(modes, max_lag_fs=max_lag_fs)
        lag = curves["lag_fs"].to_numpy()
        values = curves.to_numpy()
        g2_mean.append(np.nanmean(values, axis=0))
        g2_sem.append(
            np.nanstd(values, axis=0, ddof=1) / np.sqrt(len(rows)) if len(rows) > 1 else np.full(len(lag), np.nan)
        )
        fitted, fitted_err = _jackknife(values, lambda c, lag=lag: _fit_values(c, lag, window))
        contrast = optical_contrast(modes, pulse_frames=pulse_frames).to_numpy()
        widths = pulse_frames * float(times[1] - times[0])
        contrast_mean.append(np.nanmean(contrast, axis=0))

        def tau(c: np.ndarray, widths=widths) -> float:
            return float(
                correlation_time(
                    xr.DataArray(c[None, :], dims=("traj", "pulse_width_fs"), coords={"pulse_width_fs": widths})
                )[0]
            )

        tau_c, tau_err = _jackknife(contrast, tau)
        fit_rows.append(
            {
                "gamma_per_ps": fitted[0],
                "gamma_err_per_ps": fitted_err[0],
                "beta": fitted[1],
                "beta_err": fitted_err[1],
                "baseline": fitted[2],
                "beta_0": float(np.nanmean(values[:, 0]) - 1.0),
                "correlation_time_fs": float(tau_c),
                "correlation_time_err_fs": float(tau_err),
                "n_seeds": len(rows),
            }
        )
        diffusion = diffusion_coefficient(msd(sub["positions"]).mean("traj"))
        d_per_fs = float(diffusion["D_A2_per_fs"])
        per_q = []
        for q in q_grid:
            row = {"q_mean_per_A": np.nan, "gamma_per_ps": np.nan, "gamma_err_per_ps": np.nan}
            row |= {"gamma_self_per_ps": np.nan, "gamma_self_err_per_ps": np.nan, "D_q2_per_ps": np.nan}
            try:
                modes_q = density_modes(sub, q_per_A=float(q), width_per_A=width_per_A, max_vectors=max_vectors)
            except ValueError:  # the cell has no vector in this shell
                per_q.append(row)
                continue
            curves_q = g2(modes_q, max_lag_fs=max_lag_fs)
            lag_q = curves_q["lag_fs"].to_numpy()
            rate, rate_err = _jackknife(curves_q.to_numpy(), lambda c, lag=lag_q: _fit_values(c, lag, window)[:1])
            fs = self_intermediate_scattering(sub, q_per_A=float(q), width_per_A=width_per_A, max_lag_fs=max_lag_fs)
            rate_s, rate_s_err = _jackknife(fs["F_s"].to_numpy(), lambda c, lag=lag_q: np.array([_self_rate(c, lag)]))
            row |= {"gamma_per_ps": float(rate[0]), "gamma_err_per_ps": float(rate_err[0])}
            row |= {"gamma_self_per_ps": float(rate_s[0]), "gamma_self_err_per_ps": float(rate_s_err[0])}
            q2 = float(np.nanmean(fs["q2_mean_per_A2"].to_numpy()))
            row |= {"q_mean_per_A": float(np.nanmean(modes_q["q_norm"].to_numpy())), "D_q2_per_ps": d_per_fs * q2 * 1e3}
            per_q.append(row)
        dispersion_rows.append(per_q)

    index = pd.MultiIndex.from_tuples(keys, names=list(STATE_POINT_AXES))
    coords = xr.Coordinates.from_pandas_multiindex(index, "group")
    g2_ds = xr.Dataset(
        {"g2": (("group", "lag_fs"), np.array(g2_mean)), "g2_sem": (("group", "lag_fs"), np.array(g2_sem))},
        coords={**coords, "lag_fs": lag},
        attrs={"q_per_A": q_per_A, "width_per_A": width_per_A},
    )
    fits = xr.Dataset(
        {name: ("group", [r[name] for r in fit_rows]) for name in fit_rows[0]},
        coords=coords,
        attrs={"q_per_A": q_per_A, "width_per_A": width_per_A, "window": list(window)},
    )
    contrast_da = xr.DataArray(
        np.array(contrast_mean),
        dims=("group", "pulse_width_fs"),
        coords={**coords, "pulse_width_fs": pulse_frames * float(times[1] - times[0])},
        name="beta_delta",
    )
    names = list(dispersion_rows[0][0])
    dispersion = xr.Dataset(
        {n: (("group", "q_per_A"), np.array([[r[n] for r in rows] for rows in dispersion_rows])) for n in names},
        coords={**coords, "q_per_A": q_grid},
        attrs={"width_per_A": width_per_A},
    )
    return XpcsStudy(g2=g2_ds, fits=fits, contrast=contrast_da, dispersion=dispersion)


def plot_xpcs(study: XpcsStudy, folder: str) -> list[str]:
    """g₂ curves, Γ(q) overlay with D q², and β_Δ vs pulse width, one figure each (PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    from pathlib import Path

    import matplotlib.pyplot as plt

    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    labels = [", ".join(f"{v}" for v in key) for key in study.g2.indexes["group"]]
    written = []
    fig, ax = plt.subplots(figsize=(6, 4))
    lag_ps = study.g2["lag_fs"].to_numpy() / 1e3
    for k, label in enumerate(labels):
        ax.plot(lag_ps[1:], study.g2["g2"].to_numpy()[k][1:], label=label)
    ax.axhline(1.0, color="k", lw=0.6)
    ax.set(xlabel="τ (ps)", ylabel="g₂(q, τ)", xscale="log", title=f"q = {study.g2.attrs['q_per_A']:g} Å⁻¹")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out / "xpcs-g2.png", dpi=120)
    written.append(str(out / "xpcs-g2.png"))
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(6, 4))
    for k, label in enumerate(labels):
        one = study.dispersion.isel(group=k)
        q = one["q_mean_per_A"].to_numpy()
        ax.errorbar(q, one["gamma_per_ps"], yerr=one["gamma_err_per_ps"], marker="o", ms=3, label=f"Γ {label}")
        ax.errorbar(
            q,
            one["gamma_self_per_ps"],
            yerr=one["gamma_self_err_per_ps"],
            marker="s",
            ms=3,
            ls=":",
            label=f"Γ_s {label}",
        )
        ax.plot(q, one["D_q2_per_ps"], "k--", lw=0.8)
    ax.set(xlabel="q (Å⁻¹)", ylabel="Γ (1/ps)", title="decay rates (dashed: D q² from the MSD)")
    ax.legend(fontsize=6)
    fig.tight_layout()
    fig.savefig(out / "xpcs-dispersion.png", dpi=120)
    written.append(str(out / "xpcs-dispersion.png"))
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(6, 4))
    widths_ps = study.contrast["pulse_width_fs"].to_numpy() / 1e3
    for k, label in enumerate(labels):
        ax.plot(widths_ps, study.contrast.to_numpy()[k], marker="o", ms=3, label=label)
    ax.set(xlabel="pulse width Δτ (ps)", ylabel="β_Δ", xscale="log", title="optical contrast")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out / "xpcs-contrast.png", dpi=120)
    written.append(str(out / "xpcs-contrast.png"))
    plt.close(fig)
    return written
