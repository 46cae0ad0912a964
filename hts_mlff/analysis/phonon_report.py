"""Tables and figures of a phonon sweep (``hts-mlff phonons``): xarray in, tables and files out.

Input: the Dataset of :func:`hts_mlff.statics.phonon_sweep.run_phonon_sweep`, dims
(forcefield, pressure_bar, step_A, mode | frequency_THz | q, band). Frequencies in THz.

**Mode-by-mode comparison** (seeds, solid-state paper §3.1): the eigenfrequencies of each force
field and of the reference, both sorted, are matched by index (the n-th mode with the n-th);
MAE and MaxAE over the non-acoustic modes (seeds: GNN vs LJ MAE < 0.03 THz, MaxAE < 0.1 THz).
**DOS overlap** ∫ min(g, g_ref) dν / ∫ g_ref dν ∈ [0, 1] of the smoothed densities (1: identical).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr


def mode_errors(ds: xr.Dataset, *, reference: str) -> xr.Dataset:
    """MAE, MaxAE (THz) of the sorted eigenfrequencies against ``reference`` and the DOS overlap,
    per (forcefield, pressure_bar, step_A). The three lowest (acoustic, ν ≈ 0) modes are left out."""
    nu = ds["mode_frequency_THz"].isel(mode=slice(3, None))
    reference_nu = nu.sel(forcefield=reference)
    diff = np.abs(nu - reference_nu)
    dos = ds["dos_smooth_per_THz"]
    reference_dos = dos.sel(forcefield=reference)
    # Normalised by the reference's own integral on this grid (the grid starts at 0, so half of
    # each smoothed acoustic zero mode falls outside it): the reference overlaps itself exactly.
    overlap = np.minimum(dos, reference_dos).sum("frequency_THz") / reference_dos.sum("frequency_THz")
    return xr.Dataset(
        {
            "mode_mae_THz": diff.mean("mode").assign_attrs(units="THz"),
            "mode_max_error_THz": diff.max("mode").assign_attrs(units="THz"),
            "dos_overlap": overlap.assign_attrs(long_name="∫ min(g, g_ref) dν"),
        }
    )


def phonon_table(ds: xr.Dataset, *, reference: str | None = None) -> pd.DataFrame:
    """One row per (force field, pressure, step): lattice, 1 − S, highest mode, acoustic |ν|max,
    and with a reference its mode MAE/MaxAE and DOS overlap."""
    frame = pd.DataFrame(
        {
            "a (Å)": ds["lattice_A"].broadcast_like(ds["symmetricity"]).to_series(),
            "1 − S": (1 - ds["symmetricity"]).to_series(),
            "ν max (THz)": ds["mode_frequency_THz"].max("mode").to_series(),
            "acoustic |ν| max (THz)": ds["acoustic_max_THz"].to_series(),
        }
    )
    if reference is not None:
        errors = mode_errors(ds, reference=reference)
        frame["mode MAE (THz)"] = errors["mode_mae_THz"].to_series()
        frame["mode MaxAE (THz)"] = errors["mode_max_error_THz"].to_series()
        frame["DOS overlap"] = errors["dos_overlap"].to_series()
    return frame


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig: Any, path: str | Path) -> str:
    """Lay out, write (150 dpi) and close a matplotlib figure; returns the path written."""
    fig.tight_layout()
    fig.savefig(path, dpi=150)
    _pyplot().close(fig)
    return str(path)


def plot_dos(ds: xr.Dataset, path: str | Path, *, reference: str | None = None) -> str:
    """Smoothed DOS of every force field overlaid (reference in black), one panel per pressure (first step)."""
    plt = _pyplot()
    pressures = ds["pressure_bar"].values
    fig, axes = plt.subplots(1, len(pressures), figsize=(4.5 * len(pressures), 3.5), squeeze=False)
    for ax, pressure in zip(axes[0], pressures, strict=True):
        for k, ff in enumerate(ds["forcefield"].values):
            g = ds["dos_smooth_per_THz"].sel(forcefield=ff, pressure_bar=pressure).isel(step_A=0)
            style = {"color": "k", "lw": 2} if ff == reference else {"color": f"C{k}", "ls": "--"}
            ax.plot(ds["frequency_THz"].values, g.values, label=str(ff), **style)
        ax.set_title(f"p = {pressure:g} bar")
        ax.set_xlabel("ν (THz)")
        ax.set_ylabel("g(ν) (1/THz)")
        ax.legend(fontsize=7)
    return save_figure(fig, path)


def plot_dispersion(ds: xr.Dataset, path: str | Path, *, reference: str | None = None) -> str:
    """Bands along the high-symmetry path, every force field overlaid, one panel per pressure."""
    plt = _pyplot()
    pressures = ds["pressure_bar"].values
    labels = ds.attrs.get("path_labels", "")
    ticks = list(ds.attrs.get("path_special_index", []))
    fig, axes = plt.subplots(1, len(pressures), figsize=(4.5 * len(pressures), 3.5), squeeze=False)
    for ax, pressure in zip(axes[0], pressures, strict=True):
        for k, ff in enumerate(ds["forcefield"].values):
            bands = ds["band_THz"].sel(forcefield=ff, pressure_bar=pressure)
            style = {"color": "k", "lw": 1.5} if ff == reference else {"color": f"C{k}", "ls": "--", "lw": 1}
            lines = ax.plot(ds["q"].values, bands.values, **style)
            lines[0].set_label(str(ff))
        if ticks and len(ticks) == len(labels):
            ax.set_xticks(ticks, ["Γ" if c == "G" else c for c in labels])
            for t in ticks:
                ax.axvline(t, color="0.8", lw=0.6)
        ax.set_title(f"p = {pressure:g} bar")
        ax.set_ylabel("ν (THz)")
        ax.legend(fontsize=7)
    return save_figure(fig, path)


def plot_symmetricity(ds: xr.Dataset, path: str | Path) -> str:
    """1 − S against the finite-difference step (log–log), one line per force field and pressure."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5, 4))
    for k, ff in enumerate(ds["forcefield"].values):
        for j, pressure in enumerate(ds["pressure_bar"].values):
            one = 1 - ds["symmetricity"].sel(forcefield=ff, pressure_bar=pressure)
            values = np.clip(one.values, 1e-16, None)
            ax.loglog(
                ds["step_A"].values,
                values,
                marker="o",
                color=f"C{k}",
                ls=["-", "--", ":", "-."][j % 4],
                label=f"{ff} @ {pressure:g} bar",
            )
    ax.set_xlabel("finite-difference step Δx (Å)")
    ax.set_ylabel("1 − S(H)")
    ax.legend(fontsize=7)
    return save_figure(fig, path)
