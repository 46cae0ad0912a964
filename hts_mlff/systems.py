"""Build the atomic systems a campaign names: FCC crystals (with vacancies) or structure files."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import ase.io
import numpy as np
from ase import Atoms
from ase.build import bulk
from ase.data import atomic_masses, atomic_numbers

from hts_mlff.spec.model import FccSystem, FileSystem, SystemSpec
from hts_mlff.units import mass_density_to_number_density, number_density_to_fcc_lattice


def fcc_lattice_A(spec: FccSystem) -> float:
    """Cubic lattice constant (Å) from whichever of lattice, number or mass density is given."""
    if spec.lattice_A is not None:
        return float(spec.lattice_A)
    if spec.number_density_per_A3 is not None:
        return number_density_to_fcc_lattice(spec.number_density_per_A3)
    mass = float(atomic_masses[atomic_numbers[spec.element]])
    return number_density_to_fcc_lattice(mass_density_to_number_density(spec.mass_density_g_per_cm3, mass_amu=mass))


@lru_cache(maxsize=32)
def _read_structure(path: str, index: int, fmt: str | None) -> Atoms:
    return ase.io.read(path, index=index, format=fmt)


def build_system(spec: SystemSpec, *, base_dir: Path, vacancy_seed: int = 0, lattice_A: float | None = None) -> Atoms:
    """The system of one task as ASE Atoms (fully periodic).

    Args:
        spec: FCC or file system spec.
        base_dir: directory that relative structure paths refer to.
        vacancy_seed: seeds random vacancy sites; pass a per-replica value.
        lattice_A: FCC lattice constant to use instead of the spec's (e.g. a relaxed one).
    """
    if isinstance(spec, FileSystem):
        path = (base_dir / spec.path).resolve()
        if not path.is_file():
            raise FileNotFoundError(f"structure file not found: {path}")
        atoms = _read_structure(str(path), spec.index, spec.format).copy()
        atoms = atoms.repeat(spec.repeat)
        if not atoms.pbc.all() or atoms.cell.volume <= 0:
            raise ValueError(f"{path}: hts_mlff needs a fully periodic cell with non-zero volume")
        return atoms
    if spec.element not in atomic_numbers:
        raise ValueError(f"unknown element {spec.element!r}")
    a = fcc_lattice_A(spec) if lattice_A is None else lattice_A
    atoms = bulk(spec.element, "fcc", a=a, cubic=True).repeat(spec.repeat)
    if isinstance(spec.vacancies, list):
        sites = sorted(set(spec.vacancies))
        if sites and sites[-1] >= len(atoms):
            raise ValueError(f"vacancy site {sites[-1]} out of range for {len(atoms)} atoms")
    else:
        rng = np.random.default_rng(vacancy_seed)
        sites = sorted(rng.choice(len(atoms), size=spec.vacancies.count, replace=False).tolist())
    if sites:
        del atoms[sites]
    return atoms


def system_size(spec: SystemSpec, *, base_dir: Path) -> int:
    """Number of atoms of a system (after vacancies), without building random variants."""
    if isinstance(spec, FccSystem):
        n = 4 * int(np.prod(spec.repeat))
        removed = len(set(spec.vacancies)) if isinstance(spec.vacancies, list) else spec.vacancies.count
        return n - removed
    return len(build_system(spec, base_dir=base_dir))


def reference_sites(spec: SystemSpec) -> np.ndarray | None:
    """(m, 3) fractional coordinates of the perfect lattice of an FCC system (vacancies
    included as sites), for Wigner–Seitz vacancy tracking; None for file systems."""
    if not isinstance(spec, FccSystem):
        return None
    perfect = bulk(spec.element, "fcc", a=fcc_lattice_A(spec), cubic=True).repeat(spec.repeat)
    return perfect.get_scaled_positions(wrap=True)
