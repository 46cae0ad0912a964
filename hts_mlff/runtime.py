"""What a pack on a worker and a calculation in-process both need: devices, force fields, lattices.

No Dask here: the worker glue (:mod:`hts_mlff.schedule.pack_job`) and the zero-temperature
calculations (:mod:`hts_mlff.statics`) call the same functions. Force fields and T = 0 lattices
are cached per process, keyed by the force field's checksum (its normalised spec and the
bytes of a checkpoint it names), so a worker builds each once however many packs it runs.
"""

from __future__ import annotations

from pathlib import Path

import torch

from hts_mlff.engine.forcefield import ForceField
from hts_mlff.forcefields.registry import build_forcefield
from hts_mlff.spec.model import Campaign, FccSystem, ForceFieldSpec
from hts_mlff.statics.lattice import fcc_lattice_constant_A, relaxed_fcc
from hts_mlff.systems import fcc_lattice_A
from hts_mlff.tasks import forcefield_checksum

_FORCEFIELDS: dict[str, ForceField] = {}
_LATTICES: dict[tuple, float] = {}


def resolve_device(name: str, *, index: int = 0) -> torch.device:
    """``auto`` → CUDA when present, else CPU. On CUDA, ``index`` picks the GPU (modulo the count):
    worker k of a multi-GPU job passes k."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cpu":
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise RuntimeError(f"device {name!r} was asked for but torch sees no CUDA device here")
    return torch.device(f"cuda:{index % torch.cuda.device_count()}")


def resolve_dtype(name: str) -> torch.dtype:
    """``float64`` or ``float32`` → the torch dtype."""
    dtypes = {"float64": torch.float64, "float32": torch.float32}
    if name not in dtypes:
        raise ValueError(f"dtype {name!r}: use one of {sorted(dtypes)}")
    return dtypes[name]


def forcefield(spec: ForceFieldSpec, *, base_dir: Path) -> ForceField:
    """The force field of ``spec`` (checkpoint paths relative to ``base_dir``), built once per process."""
    key = f"{base_dir}|{forcefield_checksum(spec, base_dir=base_dir)}"
    if key not in _FORCEFIELDS:
        _FORCEFIELDS[key] = build_forcefield(spec, base_dir=base_dir)
    return _FORCEFIELDS[key]


def fcc_lattice_at_pressure(
    spec: ForceFieldSpec,
    *,
    element: str,
    guess_lattice_A: float,
    repeat: tuple[int, int, int],
    pressure_bar: float,
    base_dir: Path,
    device: torch.device,
) -> float:
    """Cubic T = 0 lattice constant (Å) of an FCC supercell at ``pressure_bar`` under ``spec``; cached."""
    key = (forcefield_checksum(spec, base_dir=base_dir), element, tuple(repeat), guess_lattice_A, pressure_bar)
    if key not in _LATTICES:
        crystal = relaxed_fcc(
            forcefield(spec, base_dir=base_dir),
            element,
            guess_lattice_A=guess_lattice_A,
            repeat=repeat,
            pressure_bar=pressure_bar,
            device=device,
        )
        _LATTICES[key] = fcc_lattice_constant_A(crystal, repeat)
    return _LATTICES[key]


def campaign_lattice_A(
    campaign: Campaign, system: str, pressure_bar: float, *, base_dir: Path, device: torch.device
) -> float | None:
    """The T = 0 lattice (Å) at ``pressure_bar`` of an FCC system with ``relax_lattice_with``
    (None otherwise), from the named force field."""
    spec = campaign.systems[system]
    if not isinstance(spec, FccSystem) or spec.relax_lattice_with is None:
        return None
    return fcc_lattice_at_pressure(
        campaign.forcefields[spec.relax_lattice_with],
        element=spec.element,
        guess_lattice_A=fcc_lattice_A(spec),
        repeat=spec.repeat,
        pressure_bar=pressure_bar,
        base_dir=base_dir,
        device=device,
    )
