"""Figures and tables of finite-temperature lattice dynamics: SED maps, lifetimes vs k, κ per force field.

Inputs are the objects of :func:`hts_mlff.thermal.sed_study` (dims ``point`` over force field,
temperature and pressure) and of :func:`hts_mlff.thermal.green_kubo_study`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from hts_mlff.analysis.phonon_report import _pyplot, save_figure


def _k_along(sed: xr.DataArray) -> np.ndarray:
    """|k| (rad/Å) of each point of a Γ–X line."""
    k = np.stack([sed[f"k{c}_per_A"].values for c in "xyz"], axis=-1)
    return np.linalg.norm(k, axis=-1)


def _label(point: xr.DataArray | xr.Dataset) -> str:
    return f"{point['forcefield'].item()} {float(point['temperature_K']):g} K {float(point['pressure_bar']):g} bar"


def plot_sed_map(
    sed_line: xr.DataArray, lifetimes: xr.Dataset, path: str | Path, *, max_THz: float | None = None
) -> str:
    """log₁₀ φ(k, ν) summed over branches on Γ–X, one panel per state point, harmonic bands in white."""
    plt = _pyplot()
    n = sed_line.sizes["point"]
    fig, axes = plt.subplots(1, n, figsize=(4.0 * n, 3.6), squeeze=False)
    for i, ax in enumerate(axes[0]):
        one = sed_line.isel(point=i)
        k = _k_along(one)
        nu = one["frequency_THz"].values
        top = max_THz or 1.25 * float(np.nanmax(lifetimes["harmonic_THz"].isel(point=i)))
        keep = nu <= top
        phi = one.sum("branch").values[:, keep]
        image = np.log10(np.clip(phi, np.nanmax(phi) * 1e-6, None)).T
        mesh = ax.pcolormesh(k, nu[keep], image, shading="nearest", cmap="magma")
        harmonic = lifetimes["harmonic_THz"].isel(point=i).values
        ax.plot(k, harmonic, color="w", lw=0.8, ls="--")
        ax.set_title(_label(one), fontsize=8)
        ax.set_xlabel("|k| (rad/Å), Γ → X")
        ax.set_ylabel("ν (THz)")
        fig.colorbar(mesh, ax=ax, label="log₁₀ φ (eV·ps)")
    return save_figure(fig, path)


def plot_lifetimes(lifetimes: xr.Dataset, path: str | Path) -> str:
    """τ (ps) against ν of every resolved (k, branch) on Γ–X, one series per state point."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5.0, 3.6))
    for i in range(lifetimes.sizes["point"]):
        one = lifetimes.isel(point=i)
        ok = one["resolved"].values & np.isfinite(one["lifetime_ps"].values)
        ax.errorbar(
            one["peak_THz"].values[ok],
            one["lifetime_ps"].values[ok],
            yerr=one["lifetime_ps_err"].values[ok],
            fmt="o",
            ms=3,
            label=_label(one),
        )
    ax.set_yscale("log")
    ax.set_xlabel("SED peak ν (THz)")
    ax.set_ylabel("lifetime τ = 1/2γ (ps)")
    ax.legend(fontsize=7)
    return save_figure(fig, path)


def _columns(ds: xr.Dataset, names: dict[str, str]) -> pd.DataFrame:
    """The variables of ``ds`` named in ``names`` (those present) as a table, renamed."""
    return ds[[n for n in names if n in ds]].to_dataframe().rename(columns=names)


def kappa_table(sed_kappa: xr.Dataset | None, green_kubo: xr.Dataset | None) -> pd.DataFrame:
    """One row per (force field, T, P): κ from SED (± jackknife) and from Green–Kubo (interval),
    with Green–Kubo's long-time (phonon) part, the one to set against SED's relaxation-time sum."""
    frames = []
    if sed_kappa is not None and "kappa_W_per_mK" in sed_kappa:
        sed_columns = {
            "kappa_W_per_mK": "κ SED (W/m·K)",
            "kappa_err": "± (jackknife)",
            "kappa_peak_velocity_W_per_mK": "κ SED, v from peaks",
            "kappa_peak_velocity_err": "± peaks (jackknife)",
            "n_modes": "n_modes",
            "n_unresolved": "n_unresolved",
        }
        frames.append(_columns(sed_kappa, sed_columns))
    if green_kubo is not None:
        gk_columns = {
            "kappa_W_per_mK": "κ GK (W/m·K)",
            "kappa_low": "GK low",
            "kappa_high": "GK high",
            "n_seeds": "n_seeds",
            "cutoff_fs": "cutoff_fs",
            "kappa_long_W_per_mK": "κ GK long-time part",
            "kappa_long_low": "long low",
            "kappa_long_high": "long high",
        }
        frames.append(_columns(green_kubo, gk_columns))
    if not frames:
        return pd.DataFrame()
    return pd.concat(frames, axis=1).dropna(how="all")


def plot_running_kappa(running: xr.Dataset, kappa: xr.Dataset, path: str | Path) -> str:
    """Running Green–Kubo κ(t) per state point (seed mean ± standard error) with the cut-off used.

    ``running`` and ``kappa`` as returned by :func:`hts_mlff.thermal.green_kubo_study`; a κ(t)
    still rising at the cut-off says the runs are too short or too few for this state point.
    Dashed: the integral of the two-stage fit of the HCACF (short- plus long-time part).
    """
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    lag_ps = running["lag_fs"].values / 1000.0
    for i in range(running.sizes["point"]):
        curve = running.isel(point=i)
        key = {name: curve[name].item() for name in ("system", "forcefield", "temperature_K", "pressure_bar")}
        mean, sem = curve["kappa_W_per_mK"].values, curve["kappa_sem"].values
        label = f"{key['system']} {key['forcefield']} {key['temperature_K']:g} K {key['pressure_bar']:g} bar"
        (line,) = ax.plot(lag_ps, mean, lw=1.2, label=label)
        ax.fill_between(lag_ps, mean - sem, mean + sem, color=line.get_color(), alpha=0.25, lw=0)
        cutoff = kappa["cutoff_fs"].sel(key)
        if np.isfinite(float(cutoff)):
            ax.axvline(float(cutoff) / 1000.0, color=line.get_color(), ls=":", lw=1)
        if "kappa_long_W_per_mK" in kappa:  # the two-stage fit: κ_sh(1 − e^{−t/τ_sh}) + κ_lg(1 − e^{−t/τ_lg})
            point = kappa.sel(key)
            fit = sum(
                float(point[f"kappa_{part}_W_per_mK"]) * -np.expm1(-lag_ps * 1000.0 / float(point[f"tau_{part}_fs"]))
                for part in ("short", "long")
            )
            ax.plot(lag_ps, fit, color=line.get_color(), ls="--", lw=0.9)
    ax.set_xlabel("integration time t (ps)")
    ax.set_ylabel("running κ(t) (W/(m·K))")
    ax.legend(fontsize=6)
    return save_figure(fig, path)


def plot_kappa(table: pd.DataFrame, path: str | Path) -> str:
    """κ per state point: SED (jackknife error) and Green–Kubo (interval) side by side."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(max(4.0, 1.2 * len(table)), 3.6))
    x = np.arange(len(table))
    labels = [" ".join(f"{v:g}" if isinstance(v, float) else str(v) for v in key) for key in table.index]
    if "κ SED (W/m·K)" in table:
        ax.errorbar(x - 0.15, table["κ SED (W/m·K)"], yerr=table["± (jackknife)"], fmt="s", label="SED, harmonic v")
    if "κ SED, v from peaks" in table:
        ax.errorbar(
            x, table["κ SED, v from peaks"], yerr=table["± peaks (jackknife)"], fmt="D", label="SED, v from peaks"
        )
    if "κ GK (W/m·K)" in table:
        mid = table["κ GK (W/m·K)"]
        err = np.vstack([mid - table["GK low"], table["GK high"] - mid])
        ax.errorbar(x + 0.15, mid, yerr=np.nan_to_num(err), fmt="o", label="Green–Kubo")
    ax.set_xticks(x, labels, rotation=20, fontsize=7)
    ax.set_ylabel("κ (W/(m·K))")
    ax.legend(fontsize=7)
    return save_figure(fig, path)


#: Integration times (ps) at which the relaxation-time and Green–Kubo running κ are tabulated.
COMPARISON_TIMES_PS = (0.1, 0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 30.0, 50.0)


def running_kappa_comparison(running: xr.Dataset, rta: dict[tuple, xr.DataArray]) -> pd.DataFrame:
    """Green–Kubo's seed-mean running κ(t) (± standard error) beside the relaxation-time κ_RTA(t)
    of the same state point, at :data:`COMPARISON_TIMES_PS` within the Green–Kubo lags.

    ``running`` from :func:`hts_mlff.thermal.green_kubo_study`; ``rta`` maps (system, forcefield,
    T, P) to :func:`hts_mlff.analysis.sed.relaxation_time_running_kappa` on ``running``'s lags.
    """
    rows = []
    lag_fs = running["lag_fs"].values
    for i in range(running.sizes["point"]):
        curve = running.isel(point=i)
        key = tuple(curve[name].item() for name in ("system", "forcefield", "temperature_K", "pressure_bar"))
        if key not in rta:
            continue
        for t_ps in COMPARISON_TIMES_PS:
            at = int(np.searchsorted(lag_fs, 1000.0 * t_ps))
            if at >= lag_fs.size:
                break
            gk = float(curve["kappa_W_per_mK"].values[at])
            rows.append(
                {
                    "system": key[0],
                    "forcefield": key[1],
                    "temperature_K": key[2],
                    "pressure_bar": key[3],
                    "t_ps": round(float(lag_fs[at]) / 1000.0, 3),
                    "kappa GK": gk,
                    "± GK": float(curve["kappa_sem"].values[at]),
                    "kappa RTA (SED)": float(rta[key].values[at]),
                    "GK − RTA": gk - float(rta[key].values[at]),
                }
            )
    return pd.DataFrame(rows)


def plot_running_kappa_rta(running: xr.Dataset, rta: dict[tuple, xr.DataArray], path: str | Path) -> str:
    """Green–Kubo running κ(t) (± standard error) with the relaxation-time κ_RTA(t) of the SED
    modes of the same state point (dashed)."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    lag_ps = running["lag_fs"].values / 1000.0
    for i in range(running.sizes["point"]):
        curve = running.isel(point=i)
        key = tuple(curve[name].item() for name in ("system", "forcefield", "temperature_K", "pressure_bar"))
        if key not in rta:
            continue
        mean, sem = curve["kappa_W_per_mK"].values, curve["kappa_sem"].values
        label = f"{key[0]} {key[1]} {key[2]:g} K {key[3]:g} bar"
        (line,) = ax.plot(lag_ps, mean, lw=1.2, label=f"Green–Kubo, {label}")
        ax.fill_between(lag_ps, mean - sem, mean + sem, color=line.get_color(), alpha=0.25, lw=0)
        ax.plot(lag_ps, rta[key].values, ls="--", lw=1.2, color=line.get_color(), label="relaxation time (SED modes)")
    ax.set_xscale("log")
    ax.set_xlabel("integration time t (ps)")
    ax.set_ylabel("running κ(t) (W/(m·K))")
    ax.legend(fontsize=6)
    return save_figure(fig, path)


#: Parts of :func:`hts_mlff.thermal.modal_heat_study`'s table, in print order.
MODAL_PARTS = {
    "gk": "GK (full J)",
    "phonon": "phonon gas",
    "diagonal": "modes alone (RTA)",
    "cross": "between modes",
    "beyond_phonon": "beyond the phonon gas",
}


def modal_table(table: xr.Dataset) -> pd.DataFrame:
    """κ of each part with its interval, one row per (state point, part), plus the relaxation-time
    sum with lifetimes from the mode energies (jackknife error)."""
    frame = table.to_dataframe().dropna(subset=["kappa_gk_W_per_mK"])
    rows = []
    for key, row in frame.iterrows():
        for part, label in MODAL_PARTS.items():
            rows.append(
                (
                    *key,
                    label,
                    row[f"kappa_{part}_W_per_mK"],
                    row[f"kappa_{part}_low"],
                    row[f"kappa_{part}_high"],
                    row["cutoff_fs"] / 1000.0,
                )
            )
        rows.append(
            (
                *key,
                "RTA, energy lifetimes (jackknife)",
                row["kappa_energy_rta_W_per_mK"],
                row["kappa_energy_rta_low"],
                row["kappa_energy_rta_high"],
                np.nan,
            )
        )
        sed = row.get("kappa_sed_W_per_mK", np.nan)
        rows.append((*key, "RTA, Lorentzian lifetimes (SED, eq. 9)", sed, np.nan, np.nan, np.nan))
    columns = [*frame.index.names, "part", "kappa W/(m·K)", "low", "high", "cut-off ps"]
    return pd.DataFrame(rows, columns=columns).set_index([*frame.index.names, "part"])


def plot_modal_running(curves: xr.Dataset, table: xr.Dataset, path: str | Path) -> str:
    """Seed-mean running κ(t) of the full current and of its phonon-gas parts, per state point,
    with the common cut-off marked."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    lag_ps = curves["lag_fs"].values / 1000.0
    styles = {"gk": "-", "phonon": "--", "diagonal": ":", "cross": "-.", "beyond_phonon": (0, (6, 1.5, 1, 1.5, 1, 1.5))}
    cut = np.atleast_1d(table["cutoff_fs"].values.ravel())
    for i in range(curves.sizes["point"]):
        curve = curves.isel(point=i)
        color = f"C{i}"
        phonons = str(curve["phonons"].item()) if "phonons" in curve.coords else ""
        for part, label in MODAL_PARTS.items():
            ax.plot(
                lag_ps,
                curve[f"kappa_{part}_W_per_mK"].values,
                ls=styles[part],
                color=color,
                lw=1.1,
                label=f"{label} ({phonons})" if phonons else label,
            )
    for value in cut[np.isfinite(cut)]:
        ax.axvline(value / 1000.0, color="0.6", lw=0.8)
    ax.set_xscale("log")
    ax.set_xlabel("integration time t (ps)")
    ax.set_ylabel("running κ(t) (W/(m·K))")
    ax.legend(fontsize=6)
    return save_figure(fig, path)
