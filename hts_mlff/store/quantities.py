"""The table of stored quantities: the contract between engine, store, planner and reader.

Every array a campaign store can hold is declared here once — name, dims, dtype, fill value,
units, which observer produces it and how it is chunked — and every observer is registered
here with the rule that switches it on for a campaign. The worker builds a pack's observers
from this table (:func:`observers_for`), the coordinator lays out the store template from it
(:func:`array_specs`), the planner sizes a campaign from it (:func:`bytes_per_task`) and the
reader masks incomplete tasks with the declared fill values.

Adding an observer: its module under :mod:`hts_mlff.engine.observers`, and one
:func:`register_observer` call below (its quantities and when it runs).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from hts_mlff.engine.guard import FailureReason
from hts_mlff.engine.observers import SnapshotObserver, ThermoObserver, VacancyObserver
from hts_mlff.engine.observers.base import Observer
from hts_mlff.engine.observers.heat_flux import HeatFluxObserver
from hts_mlff.engine.observers.interface import InterfaceObserver
from hts_mlff.engine.observers.lattice_sites import LatticeSiteObserver
from hts_mlff.engine.observers.msd import MSDObserver
from hts_mlff.spec.model import Campaign, FccSystem, SystemSpec

#: Chunk bound (bytes) along the snapshot dim of per-atom snapshot arrays.
SNAPSHOT_CHUNK_BYTES = 64 * 2**20
#: Dims whose size is fixed.
FIXED_DIMS = {"xyz": 3, "cell_vector": 3}
#: Producer of the arrays every pack writes itself (not an observer).
PACK = "pack"


@dataclass(frozen=True)
class Quantity:
    """One stored array. Its first dim is always ``traj``.

    Attributes:
        dims: dim names; sizes come from the layout (``traj``, ``time_fs``, ``atom``), from
            :data:`FIXED_DIMS` or from the producing observer's own sample dims.
        fill_value: what a slot holds before its task is written (and what readers show for
            tasks without a completion marker).
        producer: the registered observer key, or ``"pack"``.
        chunking: ``"traj"`` (chunks of the pack size along ``traj``, whole along the rest) or
            ``"snapshots"`` (also bounded by :data:`SNAPSHOT_CHUNK_BYTES` along the second dim).
    """

    name: str
    dims: tuple[str, ...]
    dtype: str
    fill_value: float | int
    long_name: str
    producer: str
    units: str | None = None
    chunking: str = "traj"
    attrs: dict[str, Any] = field(default_factory=dict)

    def attributes(self) -> dict[str, Any]:
        out: dict[str, Any] = {"long_name": self.long_name, **self.attrs}
        if self.units is not None:
            out["units"] = self.units
        return out


@dataclass(frozen=True)
class ObserverEntry:
    """A registered observer: ``build(campaign, systems)`` returns it for a pack whose replicas
    have the given system specs (an empty list: for the store template), or None when the
    campaign does not ask for it."""

    key: str
    build: Callable[[Campaign, Sequence[SystemSpec]], Observer | None]
    quantities: tuple[str, ...]


QUANTITIES: dict[str, Quantity] = {}
OBSERVERS: dict[str, ObserverEntry] = {}


def register_quantities(*quantities: Quantity) -> None:
    for q in quantities:
        if q.name in QUANTITIES:
            raise ValueError(f"quantity {q.name!r} is declared twice")
        if q.dims[0] != "traj":
            raise ValueError(f"quantity {q.name!r}: the first dim must be traj")
        QUANTITIES[q.name] = q


def register_observer(
    key: str, build: Callable[[Campaign, Sequence[SystemSpec]], Observer | None], *quantities: Quantity
) -> None:
    """Declare an observer's quantities and the rule that builds it for a campaign."""
    if key in OBSERVERS:
        raise ValueError(f"observer {key!r} is registered twice")
    register_quantities(*quantities)
    OBSERVERS[key] = ObserverEntry(key=key, build=build, quantities=tuple(q.name for q in quantities))


# ----------------------------------------------------------------------------- the pack's own arrays
register_quantities(
    Quantity("n_atoms", ("traj",), "int32", 0, "number of atoms", PACK),
    Quantity("atomic_numbers", ("traj", "atom"), "int32", 0, "atomic number (0: no atom)", PACK),
    Quantity("failure_step", ("traj",), "int64", -1, "step at which the guard froze the replica (-1: never)", PACK),
    Quantity(
        "failure_reason",
        ("traj",),
        "int8",
        0,
        "why the replica was frozen",
        PACK,
        attrs={
            "flag_values": [r.value for r in FailureReason],
            "flag_meanings": " ".join(r.name.lower() for r in FailureReason),
        },
    ),
    Quantity("final_positions", ("traj", "atom", "xyz"), "float64", np.nan, "final unwrapped positions", PACK, "Å"),
    Quantity(
        "final_cell", ("traj", "cell_vector", "xyz"), "float64", np.nan, "final cell (rows are vectors)", PACK, "Å"
    ),
)

# ----------------------------------------------------------------------------- observers
_THERMO_UNITS = {
    "kinetic_temperature_K": ("K", "kinetic temperature"),
    "potential_energy_eV": ("eV", "potential energy"),
    "kinetic_energy_eV": ("eV", "kinetic energy"),
    "total_energy_eV": ("eV", "total energy"),
    "virial_pressure_bar": ("bar", "virial pressure"),
    "volume_A3": ("Å^3", "volume"),
}
register_observer(
    "thermo",
    lambda campaign, systems: ThermoObserver(),
    *(
        Quantity(name, ("traj", "time_fs"), "float64", np.nan, long_name, "thermo", units)
        for name, (units, long_name) in _THERMO_UNITS.items()
    ),
)


def _snapshots(field_name: str, key: str) -> Callable[[Campaign, Sequence[SystemSpec]], Observer | None]:
    def build(campaign: Campaign, systems: Sequence[SystemSpec]) -> Observer | None:
        every = getattr(campaign.protocol, key)
        return SnapshotObserver(field_name, every_samples=every) if every > 0 else None

    return build


register_observer(
    "positions",
    _snapshots("positions", "save_positions_every_samples"),
    Quantity(
        "positions",
        ("traj", "position_time_fs", "atom", "xyz"),
        "float64",
        np.nan,
        "unwrapped positions",
        "positions",
        "Å",
        "snapshots",
    ),
    Quantity(
        "cells",
        ("traj", "position_time_fs", "cell_vector", "xyz"),
        "float64",
        np.nan,
        "cell at the position snapshots (rows are vectors)",
        "positions",
        "Å",
    ),
)
register_observer(
    "velocities",
    _snapshots("velocities", "save_velocities_every_samples"),
    Quantity(
        "velocities",
        ("traj", "velocity_time_fs", "atom", "xyz"),
        "float64",
        np.nan,
        "velocities",
        "velocities",
        "Å/fs",
        "snapshots",
    ),
)
register_observer(
    "forces",
    _snapshots("forces", "save_forces_every_samples"),
    Quantity(
        "forces", ("traj", "force_time_fs", "atom", "xyz"), "float64", np.nan, "forces", "forces", "eV/Å", "snapshots"
    ),
)


def _vacancy(campaign: Campaign, systems: Sequence[SystemSpec]) -> Observer | None:
    if "vacancy" not in campaign.analyses:
        return None
    from hts_mlff.systems import reference_sites

    sites = [reference_sites(spec) for spec in systems]
    return VacancyObserver([None if s is None else torch.as_tensor(s, dtype=torch.float64) for s in sites])


register_observer(
    "vacancy",
    _vacancy,
    Quantity(
        "vacancy_site",
        ("traj", "time_fs"),
        "int32",
        -1,
        "first empty Wigner–Seitz site of the reference lattice (-1: none/not tracked)",
        "vacancy",
    ),
    Quantity("n_vacant", ("traj", "time_fs"), "int32", -1, "number of empty Wigner–Seitz sites", "vacancy"),
    Quantity(
        "vacancy_jumps",
        ("traj",),
        "int32",
        -1,
        "vacancy jumps (changes of the vacant site, up to any loss of the lattice)",
        "vacancy",
    ),
    Quantity(
        "first_vacancy_jump_fs",
        ("traj",),
        "float64",
        np.nan,
        "time of the first vacancy jump (NaN: none)",
        "vacancy",
        "fs",
    ),
)


register_observer(
    "msd",
    lambda campaign, systems: MSDObserver() if "msd" in campaign.analyses else None,
    Quantity(
        "msd_A2",
        ("traj", "time_fs"),
        "float64",
        np.nan,
        "mean squared displacement since production start",
        "msd",
        "Å^2",
    ),
)


register_observer(
    "heat_flux",
    lambda campaign, systems: HeatFluxObserver() if "heat_flux" in campaign.analyses else None,
    Quantity(
        "heat_current_eV_A_per_fs",
        ("traj", "time_fs", "xyz"),
        "float64",
        np.nan,
        "heat current J = d/dt Σ r_i e_i (extensive)",
        "heat_flux",
        "eV·Å/fs",
    ),
)


def _lattice_sites(campaign: Campaign, systems: Sequence[SystemSpec]) -> Observer | None:
    if "sed" not in campaign.analyses:
        return None
    if not systems:
        return LatticeSiteObserver()
    # FCC is a Bravais lattice (one atom per primitive cell); a structure file's cell is the basis.
    return LatticeSiteObserver([None if isinstance(spec, FccSystem) else tuple(spec.repeat) for spec in systems])


register_observer(
    "sed",
    _lattice_sites,
    Quantity(
        "lattice_site_A",
        ("traj", "atom", "xyz"),
        "float64",
        np.nan,
        "equilibrium lattice site (unwrapped position averaged over production)",
        "sed",
        "Å",
    ),
    Quantity(
        "basis_index",
        ("traj", "atom"),
        "int32",
        -1,
        "atom of the primitive cell this atom is (0 for a Bravais lattice; -1: no atom)",
        "sed",
    ),
)


def _interface(campaign: Campaign, systems: Sequence[SystemSpec]) -> Observer | None:
    if "interface" not in campaign.analyses:
        return None
    fcc = [s for s in campaign.systems.values() if isinstance(s, FccSystem)]
    n_slabs = max((s.repeat[2] for s in fcc), default=1)
    if any(not isinstance(s, FccSystem) for s in systems):
        raise ValueError("the interface observer needs FCC systems (kind: fcc), built along z")
    return InterfaceObserver([tuple(s.repeat) for s in systems], n_slabs=n_slabs)


register_observer(
    "interface",
    _interface,
    Quantity(
        "interface_order",
        ("traj", "time_fs", "slab"),
        "float64",
        np.nan,
        "crystalline order per slab along z: lateral (200) structure factor per atom pair (solid ≈ 0.7, liquid ≈ 1/N)",
        "interface",
    ),
)


# ----------------------------------------------------------------------------- readers of the table
def observers_for(campaign: Campaign, systems: Sequence[SystemSpec] = ()) -> dict[str, Observer]:
    """key → observer, for every registered observer the campaign switches on."""
    out = {}
    for key, entry in OBSERVERS.items():
        observer = entry.build(campaign, systems)
        if observer is not None:
            out[key] = observer
    return out


@dataclass(frozen=True)
class ArraySpec:
    """Shape, chunks and metadata of one stored array in a concrete store."""

    quantity: Quantity
    shape: tuple[int, ...]
    chunks: tuple[int, ...]


def dimension_sizes(campaign: Campaign, *, n_slots: int, n_frames: int, max_atoms: int) -> dict[str, int]:
    """Size of every dim a campaign's store uses."""
    sizes = {"traj": n_slots, "time_fs": n_frames, "atom": max_atoms, **FIXED_DIMS}
    for observer in observers_for(campaign).values():
        sizes.update(observer.dimension_sizes(n_frames=n_frames))
    return sizes


def stored_quantities(campaign: Campaign) -> list[Quantity]:
    """The pack's own quantities and those of every observer the campaign switches on."""
    names = [name for name, q in QUANTITIES.items() if q.producer == PACK]
    for key in observers_for(campaign):
        names.extend(OBSERVERS[key].quantities)
    return [QUANTITIES[name] for name in names]


def array_specs(
    campaign: Campaign, *, n_slots: int, chunk_size: int, n_frames: int, max_atoms: int
) -> dict[str, ArraySpec]:
    """name → shape and chunks of every array of the campaign's store."""
    sizes = dimension_sizes(campaign, n_slots=n_slots, n_frames=n_frames, max_atoms=max_atoms)
    out = {}
    for q in stored_quantities(campaign):
        shape = tuple(sizes[d] for d in q.dims)
        chunks = [chunk_size, *shape[1:]]
        if q.chunking == "snapshots":
            per_snapshot = max(1, chunk_size * int(np.prod(shape[2:])) * np.dtype(q.dtype).itemsize)
            chunks[1] = int(max(1, min(shape[1], SNAPSHOT_CHUNK_BYTES // per_snapshot)))
        out[q.name] = ArraySpec(quantity=q, shape=shape, chunks=tuple(max(1, c) for c in chunks))
    return out


def bytes_per_task(campaign: Campaign, *, n_frames: int, max_atoms: int) -> int:
    """Uncompressed bytes one task occupies in the store (the planner's storage estimate)."""
    specs = array_specs(campaign, n_slots=1, chunk_size=1, n_frames=n_frames, max_atoms=max_atoms)
    return int(sum(np.prod(s.shape) * np.dtype(s.quantity.dtype).itemsize for s in specs.values()))


def sample_coordinates(campaign: Campaign, *, time_fs: np.ndarray) -> dict[str, np.ndarray]:
    """Coordinate values (fs) of ``time_fs`` and of every observer's own sample dims."""
    coords = {"time_fs": np.asarray(time_fs, dtype=float)}
    for observer in observers_for(campaign).values():
        coords.update(observer.coordinates(time_fs=coords["time_fs"]))
    return coords
