"""Phonon sweeps (``hts-mlff phonons``): T = 0 lattice dynamics for force fields × pressures.

Per (force field, pressure): the crystal at its T = 0 lattice (its own, or ``lattice_from``'s),
the Hessian of the cubic supercell at every finite-difference step (one batched pack of the
6N displaced replicas each), its symmetricity S, the eigenfrequencies of the symmetrised,
mass-weighted Hessian with the three acoustic modes, the density of states (histogram and
smoothed), and the dispersion along the FCC high-symmetry path from the primitive cell's force
constants. Each point is a part of the sweep's result store
(:class:`hts_mlff.statics.results.PointStore`), reused on a rerun while its hash matches; the
combined ``<output>/phonons.zarr`` has dims (forcefield, pressure_bar, step_A, mode |
frequency_THz | q).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
import xarray as xr
from ase.build import bulk

from hts_mlff import runtime
from hts_mlff.engine.forcefield import ForceField
from hts_mlff.spec.phonons import PhononConfig
from hts_mlff.statics import phonons
from hts_mlff.statics.lattice import fcc_lattice_constant_A, relaxed_fcc
from hts_mlff.statics.results import PointStore, sweep_points

#: Upper edge of the DOS axis as a multiple of the highest frequency of the first point.
DOS_HEADROOM = 1.15


def phonon_point(
    config: PhononConfig,
    forcefield: ForceField,
    *,
    pressure_bar: float,
    device: torch.device,
    lattice_forcefield: ForceField | None = None,
) -> xr.Dataset:
    """One (force field, pressure): lattice, S(step), modes(step), DOS(step) and bands along the path."""
    dtype = runtime.resolve_dtype(config.dtype)
    crystal, settings = config.crystal, config.phonons
    started = time.perf_counter()
    supercell = relaxed_fcc(
        lattice_forcefield or forcefield,
        crystal.element,
        guess_lattice_A=crystal.guess_lattice_A,
        repeat=crystal.repeat,
        pressure_bar=pressure_bar,
        device=device,
        dtype=dtype,
    )
    lattice = fcc_lattice_constant_A(supercell, crystal.repeat)
    steps = config.steps_A()
    masses = supercell.get_masses()
    modes, symmetricity, acoustic_max = [], [], []
    for step in steps:
        matrix = phonons.hessian(forcefield, supercell, step_A=step, dtype=dtype, device=device)
        nu, _, acoustic = phonons.normal_modes(matrix, masses)
        modes.append(nu)
        symmetricity.append(phonons.symmetricity(matrix))
        acoustic_max.append(float(np.abs(nu[acoustic]).max()))
    modes_np = np.array(modes)
    primitive = bulk(crystal.element, "fcc", a=lattice)
    path = primitive.cell.bandpath(settings.path, npoints=settings.path_points)
    position, special, labels = path.get_linear_kpoint_axis()
    bands = phonons.frequencies_THz(forcefield, primitive, path.kpts, step_A=steps[0], dtype=dtype, device=device)
    top = DOS_HEADROOM * max(float(modes_np.max()), float(bands.max()))
    edges = np.arange(0.0, top + settings.dos_bin_THz, settings.dos_bin_THz)
    centres = 0.5 * (edges[1:] + edges[:-1])
    dos = [phonons.density_of_states(nu, bins_THz=edges) for nu in modes_np]  # (n_steps, n_bins)
    smooth = [phonons.density_of_states(nu, bins_THz=edges, smearing_THz=settings.dos_smearing_THz) for nu in modes_np]
    return xr.Dataset(
        {
            "lattice_A": ((), lattice),
            "symmetricity": ("step_A", np.array(symmetricity)),
            "acoustic_max_THz": ("step_A", np.array(acoustic_max)),
            "mode_frequency_THz": (("step_A", "mode"), modes_np),
            "dos_per_THz": (("step_A", "frequency_THz"), np.array(dos)),
            "dos_smooth_per_THz": (("step_A", "frequency_THz"), np.array(smooth)),
            "band_THz": (("q", "band"), bands),
            "q_frac": (("q", "reciprocal"), np.asarray(path.kpts)),
            "path_position": ("q", np.asarray(position, dtype=float)),
            "wall_s": ((), time.perf_counter() - started),
        },
        coords={
            "step_A": np.array(steps, dtype=float),
            "mode": np.arange(modes_np.shape[1]),
            "frequency_THz": centres,
            "q": np.arange(len(position)),
            "band": np.arange(bands.shape[1]),
        },
        attrs={
            "path_labels": "".join(labels),
            "path_special_index": [int(k) for k in np.searchsorted(position, np.asarray(special) - 1e-9)],
        },
    )


def run_phonon_sweep(
    config: PhononConfig,
    *,
    base_dir: Path,
    on_point: Callable[[str, float, xr.Dataset, bool], None] | None = None,
) -> xr.Dataset:
    """Compute (or reuse) every point, write ``phonons.zarr`` and return it (loaded).

    ``on_point(forcefield, pressure_bar, dataset, reused)`` is called after each point.
    """
    store = PointStore((base_dir / config.output).resolve(), name="phonons")
    points = sweep_points(config, phonon_point, store=store, base_dir=base_dir, on_point=on_point)
    first = points[0]
    aligned = [_common_axes(p, first) for p in points]
    attrs = {
        "name": config.name,
        "element": config.crystal.element,
        "repeat": list(config.crystal.repeat),
        "lattice_from": config.lattice_from or "own",
        "reference": config.phonons.reference or "",
        "path_labels": first.attrs.get("path_labels", ""),
        "path_special_index": list(first.attrs.get("path_special_index", [])),
    }
    return store.combine(aligned, attrs=attrs)


def _common_axes(ds: xr.Dataset, first: xr.Dataset) -> xr.Dataset:
    """Put every point on the first point's DOS axis (its range follows the highest frequency,
    which differs between points) by linear interpolation (0 outside), so points combine along
    forcefield × pressure. The path is indexed by point number (``q``), the same for all."""
    if np.array_equal(ds["frequency_THz"].values, first["frequency_THz"].values):
        return ds
    return ds.interp(frequency_THz=first["frequency_THz"].values, kwargs={"fill_value": 0.0})
