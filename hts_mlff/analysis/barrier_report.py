"""Figures and tables of a barrier sweep (``hts-mlff barrier``): xarray in, files out.

Input: the Dataset of :func:`hts_mlff.statics.barrier_sweep.run_barrier_sweep`, dims (forcefield,
pressure_bar, image). Energies in eV (shown in meV), arc length in Å of the 3N-dimensional
path, forces in eV/Å.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr


def barrier_table(ds: xr.Dataset) -> pd.DataFrame:
    """One row per (force field, pressure): barrier from forces and from energies (meV), their
    difference, lattice (Å), ν_D (THz), convergence."""
    frame = ds[
        ["barrier_eV", "barrier_energy_eV", "lattice_A", "debye_frequency_THz", "converged", "iterations"]
    ].to_dataframe()
    out = pd.DataFrame(
        {
            "E_b forces (meV)": frame["barrier_eV"] * 1e3,
            "E_b energies (meV)": frame["barrier_energy_eV"] * 1e3,
            "difference (%)": 100 * (frame["barrier_eV"] / frame["barrier_energy_eV"] - 1),
            "a (Å)": frame["lattice_A"],
            "ν_D (THz)": frame["debye_frequency_THz"],
            "converged": frame["converged"].astype(bool),
            "iterations": frame["iterations"].astype(int),
        }
    )
    return out


def plot_barrier_profiles(ds: xr.Dataset, path: str | Path) -> str:
    """Per pressure (one panel each): E(s) from the force line integral (lines), from the force
    field's energies (markers, conservative models only) and F·t along the path (lower row)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    pressures = ds["pressure_bar"].values
    fig, axes = plt.subplots(2, len(pressures), figsize=(4 * len(pressures), 6), squeeze=False, sharex="col")
    for column, pressure in enumerate(pressures):
        top, bottom = axes[0, column], axes[1, column]
        for k, ff in enumerate(ds["forcefield"].values):
            one = ds.sel(forcefield=ff, pressure_bar=pressure)
            s = one["arc_length_A"].values
            color = f"C{k}"
            top.plot(s, one["profile_eV"].values * 1e3, "-", color=color, label=f"{ff} (forces)")
            energy = one["energy_eV"].values
            if np.isfinite(energy).all():
                top.plot(s, energy * 1e3, "o", color=color, mfc="none", label=f"{ff} (energies)")
            bottom.plot(s, one["tangential_force_eV_per_A"].values * 1e3, "-o", color=color, ms=3)
        top.set_title(f"p = {pressure:g} bar")
        top.set_ylabel("E − E_A (meV)")
        bottom.set_ylabel("F · t (meV/Å)")
        bottom.set_xlabel("arc length (Å)")
        bottom.axhline(0.0, color="0.6", lw=0.8)
    axes[0, 0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=150)
    plt.close(fig)
    return str(path)


def plot_barrier_vs_pressure(ds: xr.Dataset, path: str | Path) -> str:
    """E_b (meV) against pressure (kbar), one line per force field."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 4))
    pressure_kbar = ds["pressure_bar"].values / 1000.0
    for k, ff in enumerate(ds["forcefield"].values):
        one = ds.sel(forcefield=ff)
        ax.plot(pressure_kbar, one["barrier_eV"].values * 1e3, "-o", color=f"C{k}", label=str(ff))
    ax.set_xlabel("pressure (kbar)")
    ax.set_ylabel("vacancy-hop barrier E_b (meV)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=150)
    plt.close(fig)
    return str(path)
