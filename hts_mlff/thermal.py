"""Finite-temperature lattice dynamics of a campaign store: SED maps, lifetimes and κ per state point.

Public entry points (the ``hts-mlff thermal`` command is a thin shell around them):

- :func:`harmonic_reference`: T = 0 frequencies, polarisations (for SED projections) and group
  velocities of a force field at a lattice, on any k set;
- :func:`sed_study`: for every (force field, temperature, pressure) of an FCC system whose store
  holds velocities and lattice sites (``analyses: [sed]``): the seed-averaged SED on Γ–X along
  the cell's longest axis, Lorentzian lifetimes there, and κ from lifetimes on the full k grid
  of the cell with a leave-one-seed-out (jackknife) error;
- :func:`green_kubo_study`: κ from the stored heat current (``analyses: [heat_flux]``) per
  system (cell size), force field, T and P, with the running κ(t) curves behind it;
- :func:`modal_heat_study`: Green–Kubo κ beside the part of it a phonon gas carries (stored
  positions and velocities projected on the harmonic normal modes), split into each mode's own
  correlations (the relaxation-time sum) and those between modes
  (:mod:`hts_mlff.analysis.modal_heat`).

This module sits where the CLI does in the data flow: it reads a store, rebuilds force fields
from their parameters (Lennard-Jones and GNN checkpoints only — never code named in a store)
for the harmonic reference, and hands numpy/xarray objects to :mod:`hts_mlff.analysis.sed`.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr
from ase import Atoms
from ase.build import bulk

from hts_mlff.analysis.green_kubo import (
    green_kubo_kappa,
    heat_current_autocorrelation,
    running_kappa,
    two_stage_decomposition,
)
from hts_mlff.analysis.modal_heat import (
    chunk_slices,
    energies_from_series,
    energy_series,
    modal_currents,
    modal_kappa,
    normal_mode_coordinates,
)
from hts_mlff.analysis.sed import (
    grid_kpoints,
    line_kpoints,
    own_cell_kpoints,
    phonon_lifetimes,
    sed_thermal_conductivity,
    spectral_energy_density,
)
from hts_mlff.engine.forcefield import ForceField
from hts_mlff.spec.model import Campaign, FccSystem, kind_names
from hts_mlff.statics.phonons import force_constants, harmonic_modes, minimal_supercell


def fcc_primitive_cell(element: str, lattice_A: float) -> Atoms:
    """The one-atom primitive cell of an FCC crystal with cubic lattice constant ``lattice_A``."""
    return bulk(element, "fcc", a=lattice_A)


def harmonic_reference(
    forcefield: ForceField, unit_cell: Atoms, k_points_A: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Harmonic (n_k, n_b) frequencies in THz, (n_k, 3·n_basis, n_b) polarisations to project an
    SED on (eigenvectors at −k, for the e^{+ik·r} sign of seed eq. 7) and (n_k, n_b, 3) group
    velocities in Å/ps, from the force constants of ``forcefield`` at ``unit_cell``."""
    supercell = minimal_supercell(unit_cell, range_A=max(forcefield.cutoff_A, 1.0))
    constants, big = force_constants(forcefield, unit_cell, supercell=supercell)
    return harmonic_modes(constants, big, unit_cell, -np.asarray(k_points_A, dtype=float))


@dataclass
class SedStudy:
    """Results of :func:`sed_study`; every table has dims (forcefield, temperature_K, pressure_bar, …)."""

    sed_line: xr.DataArray  # (point, k, branch, frequency_THz) eV·ps, seed mean, Γ–X
    lifetimes_line: xr.Dataset  # (point, k, branch): peaks, lifetimes, harmonic_THz
    kappa: xr.Dataset  # (system, forcefield, temperature_K, pressure_bar): κ, jackknife error, n_modes, …
    notes: list[str] = field(default_factory=list)
    #: per state point (forcefield, T, P): the full grid's modes behind κ — ``lifetime_ps`` and
    #: ``mode_kappa_W_per_mK`` (harmonic group velocities) over (k, branch)
    modes: dict[tuple[str, float, float], xr.Dataset] = field(default_factory=dict)


def _fcc_system(spec: Campaign, system: str) -> FccSystem:
    found = spec.systems[system]
    if not isinstance(found, FccSystem):
        raise ValueError(f"system {system!r} is a structure file: SED k sets are built for FCC systems only")
    return found


def _harmonic_forcefield(spec: Campaign, name: str, *, base_dir: Path) -> ForceField:
    from hts_mlff.runtime import forcefield

    ff_spec = spec.forcefields[name]
    if not type(ff_spec).data_only:
        raise ValueError(
            f"force field {name!r} is kind {ff_spec.kind!r}: the harmonic reference is rebuilt only for "
            f"{', '.join(kind_names(data_only=True))} (no code named in a store is run); pass --harmonic NAME"
        )
    return forcefield(ff_spec, base_dir=base_dir)


def _state_points(ds: xr.Dataset, system: str) -> Iterator[tuple[str, float, float, np.ndarray]]:
    """(force field, T, P, traj positions of its complete trajectories) of every state point of ``system``."""
    frame = ds["traj"].to_index().to_frame(index=False)
    keys = frame[frame["system"] == system][["forcefield", "temperature_K", "pressure_bar"]].drop_duplicates()
    done = ds["status"].values == "done"
    for forcefield_name, temperature, pressure in keys.itertuples(index=False):
        chosen = np.flatnonzero(
            (frame["system"] == system).to_numpy()
            & (frame["forcefield"] == forcefield_name).to_numpy()
            & (frame["temperature_K"] == temperature).to_numpy()
            & (frame["pressure_bar"] == pressure).to_numpy()
            & done
        )
        yield forcefield_name, temperature, pressure, chosen


def _cell_k_grid(fcc: FccSystem, cell_A: np.ndarray) -> np.ndarray:
    """(N_T, 3) every k of an FCC supercell (``cell_A``, repeats of the cubic cell) modulo the
    primitive reciprocal lattice, rad/Å."""
    conventional = cell_A / np.asarray(fcc.repeat, dtype=float)[:, None]
    return grid_kpoints(cell_A, 0.5 * np.array([[0, 1, 1], [1, 0, 1], [1, 1, 0]]) @ conventional)


def _longest_axis(cell: np.ndarray) -> int:
    return int(np.argmax(np.linalg.norm(cell, axis=1)))


def peak_scaled_velocities(fits: xr.Dataset, harmonic_THz: np.ndarray, velocity_A_per_ps: np.ndarray) -> np.ndarray:
    """Group velocities of the bands the SED peaks trace, as the harmonic ones scaled mode by
    mode: v = v_h · ω_peak/ω_h. Exact when the finite-temperature shift scales a branch by one
    factor (∂ω_peak/∂k = λ ∂ω_h/∂k for ω_peak = λ ω_h); it leaves out ω_h ∂λ/∂k. Modes without
    a fitted peak keep v_h. Shapes: (n_k, n_branch) THz, (n_k, n_branch, 3) Å/ps."""
    peak = np.asarray(fits["peak_THz"].values, dtype=float)
    ratio = np.where(
        np.isfinite(peak) & (harmonic_THz > 1e-3), peak / np.where(harmonic_THz > 1e-3, harmonic_THz, 1.0), 1.0
    )
    return velocity_A_per_ps * ratio[..., None]


def _kappa_with_jackknife(
    point: xr.Dataset,
    k_grid: np.ndarray,
    modes: tuple[np.ndarray, np.ndarray, np.ndarray],
    *,
    volume_A3: float,
    temperature_K: float,
    heat_capacity: str,
    n_segments: int,
    modes_out: dict[str, xr.Dataset],
) -> dict[str, float]:
    frequencies, polarizations, velocities = modes
    per_seed = spectral_energy_density(point, k_grid, polarizations=polarizations, n_segments=n_segments)

    def kappa_of(fits: xr.Dataset, *, from_peaks: bool = False) -> xr.Dataset:
        v = peak_scaled_velocities(fits, frequencies, velocities) if from_peaks else velocities
        return sed_thermal_conductivity(
            fits, v, volume_A3=volume_A3, temperature_K=temperature_K, heat_capacity=heat_capacity
        )

    full_fits = phonon_lifetimes(per_seed.mean("traj", keep_attrs=True), guesses_THz=frequencies)
    full = kappa_of(full_fits)
    modes_out["modes"] = xr.Dataset(
        {"lifetime_ps": full_fits["lifetime_ps"], "mode_kappa_W_per_mK": full["mode_kappa_W_per_mK"]}
    )
    peaks = kappa_of(full_fits, from_peaks=True)
    n = per_seed.sizes["traj"]
    err = err_peaks = np.nan
    if n >= 3:
        total = per_seed.sum("traj")

        def mean_without(i: int) -> xr.DataArray:
            return ((total - per_seed.isel(traj=i)) / (n - 1)).assign_attrs(per_seed.attrs)

        refits = [phonon_lifetimes(mean_without(i), start=full_fits) for i in range(n)]

        def jackknife(values: list[float]) -> float:
            return float(np.sqrt((n - 1) / n * np.sum((np.asarray(values) - np.mean(values)) ** 2)))

        err = jackknife([float(kappa_of(f)["kappa_W_per_mK"]) for f in refits])
        err_peaks = jackknife([float(kappa_of(f, from_peaks=True)["kappa_W_per_mK"]) for f in refits])
    ratio = full_fits["peak_THz"].values / np.where(frequencies > 1e-3, frequencies, np.nan)
    return {
        "kappa_W_per_mK": float(full["kappa_W_per_mK"]),
        "kappa_err": err,
        "kappa_peak_velocity_W_per_mK": float(peaks["kappa_W_per_mK"]),
        "kappa_peak_velocity_err": err_peaks,
        "median_peak_over_harmonic": float(np.nanmedian(ratio)),
        "n_modes": int(full["n_modes"]),
        "n_unresolved": int(full["n_unresolved"]),
        "kappa_unresolved_floor_W_per_mK": float(full["kappa_unresolved_floor_W_per_mK"]),
        "n_seeds": n,
    }


def sed_study(
    ds: xr.Dataset,
    spec: Campaign,
    *,
    system: str,
    base_dir: Path,
    harmonic: str | None = None,
    kappa: bool = True,
    heat_capacity: str = "classical",
    n_segments: int = 1,
) -> SedStudy:
    """SED on Γ–X, lifetimes and κ (full grid) for every state point of ``system``.

    Args:
        ds: the campaign dataset (complete trajectories only are used).
        spec: the campaign (from the store's attributes).
        harmonic: force field whose harmonic modes give polarisations, guesses and group
            velocities; default: each state point's own force field.
        kappa: also compute κ from lifetimes on the cell's full k grid (N_cells k points).
    """
    fcc = _fcc_system(spec, system)
    for name in ("velocities", "lattice_site_A"):
        if name not in ds:
            raise ValueError(f"the store has no {name!r}: run the campaign with analyses: [sed] (stored velocities)")
    lines, fits, rows, notes = [], [], [], []
    mode_tables: dict[tuple[str, float, float], xr.Dataset] = {}
    for forcefield_name, temperature, pressure, chosen in _state_points(ds, system):
        if chosen.size == 0:
            notes.append(f"{forcefield_name} {temperature:g} K {pressure:g} bar: no complete trajectory")
            continue
        point = ds.isel(traj=chosen)
        cell = np.asarray(point["final_cell"].values[0], dtype=float)
        cells = np.asarray(point["final_cell"].values, dtype=float)
        lattice_A = float(np.mean(np.linalg.norm(cells, axis=2) / np.asarray(fcc.repeat)))
        unit = fcc_primitive_cell(fcc.element, lattice_A)
        reference = _harmonic_forcefield(spec, harmonic or forcefield_name, base_dir=base_dir)
        axis = _longest_axis(cell)
        x_point = np.zeros(3)
        x_point[axis] = 2 * np.pi / (np.linalg.norm(cell[axis]) / fcc.repeat[axis])
        k_line = line_kpoints(cell, end_A=x_point)
        frequencies, polarizations, _ = harmonic_reference(reference, unit, k_line)
        sed = spectral_energy_density(point, k_line, polarizations=polarizations, n_segments=n_segments)
        mean = sed.mean("traj", keep_attrs=True)
        line_fit = phonon_lifetimes(mean, guesses_THz=frequencies)
        line_fit["harmonic_THz"] = (("k", "branch"), frequencies)
        label = {"forcefield": forcefield_name, "temperature_K": float(temperature), "pressure_bar": float(pressure)}
        lines.append(mean.drop_vars([c for c in mean.coords if "traj" in mean[c].dims], errors="ignore"))
        fits.append(line_fit)
        row = dict(label, system=system, lattice_A=lattice_A, record_ps=float(sed.attrs["record_ps"]))
        if kappa:
            k_grid = _cell_k_grid(fcc, cell)
            modes = harmonic_reference(reference, unit, k_grid)
            volume = float(np.mean(np.abs(np.linalg.det(cells))))
            found: dict[str, xr.Dataset] = {}
            row.update(
                _kappa_with_jackknife(
                    point,
                    k_grid,
                    modes,
                    volume_A3=volume,
                    temperature_K=float(point["kinetic_temperature_K"].mean()),
                    heat_capacity=heat_capacity,
                    n_segments=n_segments,
                    modes_out=found,
                )
            )
            mode_tables[(forcefield_name, float(temperature), float(pressure))] = found["modes"]
        rows.append(row)
    if not rows:
        raise ValueError(f"no complete trajectory of system {system!r} with stored velocities")
    index = [(r["forcefield"], r["temperature_K"], r["pressure_bar"]) for r in rows]
    point_index = xr.Coordinates.from_pandas_multiindex(
        pd.MultiIndex.from_tuples(index, names=["forcefield", "temperature_K", "pressure_bar"]),
        "point",
    )
    table = pd.DataFrame(rows).set_index(["system", "forcefield", "temperature_K", "pressure_bar"])
    return SedStudy(
        sed_line=xr.concat(lines, dim="point", coords="minimal", compat="override").assign_coords(point_index),
        lifetimes_line=xr.concat(fits, dim="point", coords="minimal", compat="override").assign_coords(point_index),
        kappa=xr.Dataset.from_dataframe(table),
        notes=notes,
        modes=mode_tables,
    )


@dataclass
class GreenKuboStudy:
    """Results of :func:`green_kubo_study`."""

    #: (system, forcefield, temperature_K, pressure_bar): κ, interval, cut-off, and its split into
    #: short- and long-time parts (:func:`~hts_mlff.analysis.green_kubo.two_stage_decomposition`)
    kappa: xr.Dataset
    running: xr.Dataset  # (point, lag_fs): seed-mean running κ(t) and its standard error, W/(m·K)


def green_kubo_study(ds: xr.Dataset, *, cutoff_fs: float | None = None, system: str | None = None) -> GreenKuboStudy:
    """κ from the stored heat current per (system, force field, T, P) (complete trajectories only).

    Each system (cell size) is its own state point: a size sweep gives κ per size.
    """
    if "heat_current_eV_A_per_fs" not in ds:
        raise ValueError("the store has no heat current: run the campaign with analyses: [heat_flux]")
    keep = ds["status"].values == "done"
    if system is not None:
        keep &= ds["system"].values == system
    done = ds.isel(traj=np.flatnonzero(keep))
    by = ("system", "forcefield", "temperature_K", "pressure_bar")
    hcacf = heat_current_autocorrelation(done)  # once: for κ and for the curves behind it
    kappa = green_kubo_kappa(done, cutoff_fs=cutoff_fs, by=by, hcacf=hcacf)
    stages = two_stage_decomposition(done, hcacf=hcacf, fit_to_fs=cutoff_fs, by=by).drop_vars("n_seeds")
    kappa = kappa.merge(stages)
    running = running_kappa(done, hcacf)
    frame = running["traj"].to_index().to_frame(index=False)[list(by)]
    means, sems, labels = [], [], []
    for key, members in frame.groupby(list(by)).groups.items():
        curves = running.isel(traj=np.asarray(list(members)))
        curves = curves.isel(traj=np.flatnonzero(np.isfinite(curves.values).all(axis=1)))
        if curves.sizes["traj"] == 0:
            continue
        labels.append(key)
        means.append(curves.mean("traj").values)
        sems.append(curves.std("traj", ddof=1).values / np.sqrt(curves.sizes["traj"]))
    point = xr.Coordinates.from_pandas_multiindex(pd.MultiIndex.from_tuples(labels, names=list(by)), "point")
    lag = running["lag_fs"].values
    curves = xr.Dataset(
        {
            "kappa_W_per_mK": (("point", "lag_fs"), np.asarray(means), {"units": "W/(m·K)"}),
            "kappa_sem": (("point", "lag_fs"), np.asarray(sems), {"units": "W/(m·K)"}),
        },
        coords={"lag_fs": lag},
    ).assign_coords(point)
    return GreenKuboStudy(kappa=kappa, running=curves)


def _traj_chunk_groups(ds: xr.Dataset, chosen: np.ndarray, name: str) -> list[np.ndarray]:
    """``chosen`` traj positions grouped by the store's chunks of ``name`` along traj."""
    groups = [chosen[(chosen >= part.start) & (chosen < part.stop)] for part in chunk_slices(ds[name], "traj")]
    return [g for g in groups if g.size]


def _mode_spectrum(q_dot: np.ndarray, *, dt_fs: float) -> tuple[np.ndarray, np.ndarray]:
    """(n_modes, n_t) Q̇ → (n_modes, n_ν) |FFT|² at +ν and −ν added (the waves along −k and +k,
    one frequency by time reversal), and ν ≥ 0 in THz."""
    spectrum = np.abs(np.fft.fft(q_dot, axis=-1)) ** 2
    nu = np.fft.fftfreq(q_dot.shape[-1], d=dt_fs) * 1000.0
    keep = nu >= 0
    return spectrum[:, keep] + spectrum[:, np.flatnonzero(keep) * -1 % len(nu)], nu[keep]


class _LazyEnergies(Sequence):
    """Each seed's running-wave energies, made from its series when indexed (never all at once)."""

    def __init__(self, series: list[np.ndarray], frequencies_THz: np.ndarray) -> None:
        self.series, self.frequencies_THz = series, frequencies_THz

    def __len__(self) -> int:
        return len(self.series)

    def __getitem__(self, i: int) -> np.ndarray:  # type: ignore[override]
        return energies_from_series(self.series[i], self.frequencies_THz)


def modal_heat_study(
    ds: xr.Dataset,
    spec: Campaign,
    *,
    system: str,
    base_dir: Path,
    harmonic: str | None = None,
    cutoff_fs: float | None = None,
) -> tuple[xr.Dataset, xr.Dataset]:
    """Green–Kubo κ beside its phonon-gas part per state point of ``system``
    (:mod:`hts_mlff.analysis.modal_heat`), with two sets of phonons: ``harmonic`` (T = 0
    frequencies and group velocities at the run's lattice) and ``renormalised`` (the peaks of
    each mode's velocity spectrum in the same runs, fitted as for the SED, and group
    velocities scaled by peak/harmonic as :func:`peak_scaled_velocities` does).

    The store needs ``heat_flux`` and ``sed`` analyses and positions and velocities saved at the
    same samples. Memory: 12 bytes per (trajectory, mode, snapshot) of one state point at a time. Returns the table
    (forcefield, temperature_K, pressure_bar, phonons): κ_GK, κ_ph, κ_diag, κ_cross, κ_GK − κ_ph
    with intervals, the RTA sums with lifetimes from the mode energies (jackknife) and from
    Lorentzian fits of the same spectra (seed eq. 9, ``kappa_sed_W_per_mK``); and the seed-mean
    running curves (point, lag_fs).
    """
    fcc = _fcc_system(spec, system)
    for name in ("positions", "velocities", "lattice_site_A", "heat_current_eV_A_per_fs"):
        if name not in ds:
            raise ValueError(
                f"the store has no {name!r}: the modal analysis needs analyses: [heat_flux, sed] and "
                "save_positions_every_samples = save_velocities_every_samples"
            )
    rows, curves = [], []
    for forcefield_name, temperature, pressure, chosen in _state_points(ds, system):
        if chosen.size < 2:
            continue
        cells = np.asarray(ds["final_cell"].values[chosen], dtype=float)
        lattice_A = float(np.mean(np.linalg.norm(cells, axis=2) / np.asarray(fcc.repeat)))
        unit = fcc_primitive_cell(fcc.element, lattice_A)
        reference = _harmonic_forcefield(spec, harmonic or forcefield_name, base_dir=base_dir)
        k_grid = _cell_k_grid(fcc, cells[0])
        # harmonic_reference returns the modes at −k (the SED's sign): ask for −k to get +k.
        frequencies, polarizations, velocities = harmonic_reference(reference, unit, -k_grid)
        point = ds.isel(traj=chosen)
        snapshot_fs = np.asarray(point["position_time_fs"].values, dtype=float)
        dt_fs = float(snapshot_fs[1] - snapshot_fs[0])
        series, spectrum = [], 0.0
        for members in _traj_chunk_groups(ds, chosen, "positions"):
            group = ds.isel(traj=members)
            k_own = np.stack([own_cell_kpoints(k_grid, cells[0], c) for c in group["final_cell"].values])
            q, q_dot = normal_mode_coordinates(group, k_own, polarizations)
            for i in range(len(members)):
                series.append(energy_series(q[i], q_dot[i]).reshape(3, -1, len(snapshot_fs)))
                power, nu_THz = _mode_spectrum(q_dot[i].reshape(-1, len(snapshot_fs)), dt_fs=dt_fs)
                spectrum = spectrum + power / chosen.size
        n_k, n_b = frequencies.shape
        sed = xr.DataArray(
            np.asarray(spectrum).reshape(n_k, n_b, -1),
            dims=("k", "branch", "frequency_THz"),
            coords={"frequency_THz": nu_THz},
            attrs={"record_ps": len(snapshot_fs) * dt_fs * 1e-3},
        )
        fits = phonon_lifetimes(sed, guesses_THz=frequencies)
        peak = np.asarray(fits["peak_THz"].values, dtype=float)
        renormalised = np.where(np.isfinite(peak) & (frequencies > 1e-3), peak, frequencies)
        phonons = {
            "harmonic": (frequencies, velocities),
            "renormalised": (renormalised, peak_scaled_velocities(fits, frequencies, velocities)),
        }
        temperatures = np.asarray(point["kinetic_temperature_K"].mean("time_fs").values, dtype=float)
        volumes = np.asarray(point["volume_A3"].mean("time_fs").values, dtype=float)
        total = heat_current_autocorrelation(point)
        label = {"forcefield": forcefield_name, "temperature_K": float(temperature), "pressure_bar": float(pressure)}
        for name, (omega_THz, v_A_per_ps) in phonons.items():
            energies = _LazyEnergies(series, omega_THz.ravel())
            v_A_per_fs = v_A_per_ps.reshape(-1, 3) * 1e-3
            modal = modal_currents(energies, v_A_per_fs, temperatures, max_lag=len(snapshot_fs) // 2)
            row, curve = modal_kappa(
                modal,
                total_hcacf=np.asarray(total.values, dtype=float),
                total_dt_fs=float(total["lag_fs"].values[1]),
                modal_dt_fs=dt_fs,
                group_velocity_A_per_fs=v_A_per_fs,
                volumes_A3=volumes,
                temperatures_K=temperatures,
                cutoff_fs=cutoff_fs,
            )
            # seed eq. 9 on the same runs: Lorentzian lifetimes of the same spectra (the SED of each mode)
            row["kappa_sed_W_per_mK"] = float(
                sed_thermal_conductivity(
                    fits, v_A_per_ps, volume_A3=float(volumes.mean()), temperature_K=float(temperatures.mean())
                )["kappa_W_per_mK"]
            )
            row["median_peak_over_harmonic"] = float(
                np.nanmedian(omega_THz / np.where(frequencies > 1e-3, frequencies, np.nan))
            )
            rows.append({"system": system, **label, "phonons": name, **row})
            coords = {k: ("point", [v]) for k, v in {**label, "phonons": name}.items()}
            curves.append(curve.expand_dims(point=[len(curves)]).assign_coords(coords))
    if not rows:
        raise ValueError(f"no state point of system {system!r} with two or more complete trajectories")
    table = pd.DataFrame(rows).set_index(["system", "forcefield", "temperature_K", "pressure_bar", "phonons"])
    return xr.Dataset.from_dataframe(table), xr.concat(curves, dim="point")
