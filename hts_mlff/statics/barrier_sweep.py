"""Barrier sweeps (``hts-mlff barrier``), and the Debye frequencies of a campaign's force fields.

A barrier sweep: for every (force field, pressure) the T = 0 lattice, the Debye frequency and
the vacancy-hop minimum-energy path, as one xarray Dataset; the Debye frequencies of a
campaign's force fields on the crystal its tasks start from are the ν₀ comparison of the rates.

Each point is a part ``<force field>@<pressure>bar`` of the sweep's result store
(:class:`hts_mlff.statics.results.PointStore`), reused on a rerun while its hash matches; the
parts are combined into ``<output>/barriers.zarr`` with dims (forcefield, pressure_bar, image).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
import xarray as xr

from hts_mlff import runtime
from hts_mlff.engine.string_method import tangents
from hts_mlff.spec.barrier import BarrierConfig
from hts_mlff.statics.lattice import debye_frequency_THz, fcc_lattice_constant_A, relaxed_fcc
from hts_mlff.statics.results import PointStore, sweep_points
from hts_mlff.statics.vacancy_hop import HopSettings, vacancy_hop_path


def part_path(output: Path, forcefield: str, pressure_bar: float) -> Path:
    """Where the (force field, pressure) point of a barrier sweep is saved."""
    return PointStore(output, name="barriers").part_path(f"{forcefield}@{pressure_bar:g}bar")


def barrier_point(
    config: BarrierConfig, forcefield, *, pressure_bar: float, device: torch.device, lattice_forcefield=None
) -> xr.Dataset:
    """One (force field, pressure): lattice, ν_D and the hop path as a Dataset over ``image``.

    The T = 0 cell at ``pressure_bar`` comes from ``lattice_forcefield`` (default: ``forcefield``).
    """
    dtype = runtime.resolve_dtype(config.dtype)
    crystal = config.crystal
    started = time.perf_counter()
    perfect = relaxed_fcc(
        lattice_forcefield or forcefield,
        crystal.element,
        guess_lattice_A=crystal.guess_lattice_A,
        repeat=crystal.repeat,
        pressure_bar=pressure_bar,
        device=device,
        dtype=dtype,
    )
    path = vacancy_hop_path(
        forcefield,
        perfect,
        vacancy_site=crystal.vacancy_site,
        target_site=crystal.target_site,
        settings=HopSettings(**config.string.model_dump()),
        device=device,
        dtype=dtype,
    )
    string = path.string
    slope = (string.forces * tangents(string.images)).sum(1)
    n_images = string.images.shape[0]
    as_np = lambda t: t.detach().cpu().double().numpy()  # noqa: E731
    return xr.Dataset(
        {
            "barrier_eV": ((), path.barrier_eV),
            "barrier_energy_eV": ((), path.barrier_energy_eV),
            "lattice_A": ((), fcc_lattice_constant_A(perfect, crystal.repeat)),
            "debye_frequency_THz": ((), debye_frequency_THz(forcefield, perfect, device=device, dtype=dtype)),
            "converged": ((), np.int8(string.converged)),
            "iterations": ((), np.int32(string.iterations)),
            "max_perpendicular_force_eV_per_A": ((), float(string.perpendicular_force[1:-1].max())),
            "endpoint_fmax_eV_per_A": ((), path.endpoint_fmax_eV_per_A),
            "target_site": ((), np.int32(path.target_site)),
            "wall_s": ((), time.perf_counter() - started),
            "profile_eV": ("image", as_np(string.energy_from_forces)),
            "energy_eV": ("image", path.energy_eV),
            "arc_length_A": ("image", as_np(string.arc_length)),
            "tangential_force_eV_per_A": ("image", as_np(slope)),
            "perpendicular_force_eV_per_A": ("image", as_np(string.perpendicular_force)),
            "images_A": (("image", "atom", "xyz"), as_np(string.images).reshape(n_images, -1, 3)),
        },
        coords={"image": np.arange(n_images)},
    )


def run_barrier_sweep(
    config: BarrierConfig,
    *,
    base_dir: Path,
    on_point: Callable[[str, float, xr.Dataset, bool], None] | None = None,
) -> xr.Dataset:
    """Compute (or reuse) every point, write ``barriers.zarr`` and return it (loaded).

    ``on_point(forcefield, pressure_bar, dataset, reused)`` is called after each point.
    """
    store = PointStore((base_dir / config.output).resolve(), name="barriers")
    points = sweep_points(config, barrier_point, store=store, base_dir=base_dir, on_point=on_point)
    attrs = {
        "name": config.name,
        "element": config.crystal.element,
        "repeat": list(config.crystal.repeat),
        "lattice_from": config.lattice_from or "own",
    }
    return store.combine(points, attrs=attrs)


def campaign_debye_frequencies(campaign, system: str, *, base_dir: Path, pressures_bar: list[float]) -> xr.DataArray:
    """ν_D (THz) of every force field of a campaign, on the perfect crystal of FCC ``system`` at
    the lattice its tasks start from (the ``relax_lattice_with`` lattice at each pressure, else
    the given one). Dims (forcefield, pressure_bar)."""
    from hts_mlff.spec.model import FccSystem
    from hts_mlff.systems import build_system

    spec = campaign.systems[system]
    if not isinstance(spec, FccSystem):
        raise ValueError(f"system {system!r} is not an FCC crystal: no Debye frequency")
    perfect_spec = spec.model_copy(update={"vacancies": []})
    device = torch.device("cpu")
    values = np.full((len(campaign.forcefields), len(pressures_bar)), np.nan)
    forcefields = [runtime.forcefield(spec, base_dir=base_dir) for spec in campaign.forcefields.values()]
    for j, pressure in enumerate(pressures_bar):
        lattice = runtime.campaign_lattice_A(campaign, system, pressure, base_dir=base_dir, device=device)
        crystal = build_system(perfect_spec, base_dir=base_dir, lattice_A=lattice)
        for i, forcefield in enumerate(forcefields):
            values[i, j] = debye_frequency_THz(forcefield, crystal, device=device)
    return xr.DataArray(
        values,
        dims=("forcefield", "pressure_bar"),
        coords={"forcefield": list(campaign.forcefields), "pressure_bar": list(pressures_bar)},
        name="debye_frequency_THz",
        attrs={"units": "THz"},
    )
