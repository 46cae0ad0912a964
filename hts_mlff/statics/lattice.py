r"""Zero-temperature properties of a perfect crystal under a force field.

**Lattice at a pressure.** The FCC crystal's cell is relaxed by FIRE at the target pressure
(enthalpy minimum, see :mod:`hts_mlff.engine.minimize`); the seeds put the argon crystal under
tension (p ≈ −2.5 kbar) so that vacancies jump within MD time. The T = 0 lattice for a pressure
is what a vacancy campaign at that pressure starts from (``protocol.minimize.relax_cell``) and
what the string method runs in.

**Debye frequency from the force field.** The second moment of the phonon density of states
is the trace of the dynamical matrix, ⟨ω²⟩ = Tr D / 3N; for a monatomic crystal
⟨ω²⟩ = Σ_α Φ_{0α,0α} / (3m), with the self force constants Φ_{0α,0α} = −∂F_{0α}/∂x_{0α}
taken by central finite differences of the forces (so direct, force-only models work). A
Debye spectrum g(ω) ∝ ω² up to ω_D has ⟨ω²⟩ = 3ω_D²/5, so

.. math:: ν_D = \frac{1}{2π} \sqrt{\tfrac{5}{3} ⟨ω^2⟩}

the rough estimate of the attempt frequency ν₀ of an Arrhenius rate (seeds §2.3; from
Θ_D = 92 K the seeds quote 1.92 THz for solid argon).
"""

from __future__ import annotations

import math

import numpy as np
import torch
from ase import Atoms
from ase.build import bulk

from hts_mlff.engine.forcefield import ForceField
from hts_mlff.engine.minimize import fire_minimize
from hts_mlff.engine.state import state_from_atoms
from hts_mlff.units import ACCEL_A_PER_FS2_PER_EV_PER_A_AMU


def relaxed_fcc(
    forcefield: ForceField,
    element: str,
    *,
    guess_lattice_A: float,
    repeat: tuple[int, int, int],
    pressure_bar: float = 0.0,
    fmax_eV_per_A: float = 1e-5,
    device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.float64,
) -> Atoms:
    """The perfect FCC supercell (cubic cell × ``repeat``) with its T = 0 lattice at ``pressure_bar``.

    Returns ASE Atoms whose cell is exactly cubic (the mean of the relaxed diagonal) with
    atoms on their ideal sites. Raises RuntimeError if FIRE does not converge.
    """
    atoms = bulk(element, "fcc", a=guess_lattice_A, cubic=True).repeat(repeat)
    state = state_from_atoms([atoms], device=torch.device(device), dtype=dtype)
    result = fire_minimize(
        state,
        forcefield,
        fmax_eV_per_A=fmax_eV_per_A,
        max_steps=5000,
        relax_cell=True,
        pressure_bar=pressure_bar,
    )
    if not bool(result.converged.all()):
        raise RuntimeError(
            f"the {element} FCC cell did not relax at {pressure_bar} bar "
            f"(max generalised force {float(result.max_force_eV_per_A.max()):.3g} eV/Å)"
        )
    cell = state.cell[0].detach().cpu().double().numpy()
    lattice = float(np.mean(np.diag(cell) / np.asarray(repeat)))
    return bulk(element, "fcc", a=lattice, cubic=True).repeat(repeat)


def fcc_lattice_constant_A(atoms: Atoms, repeat: tuple[int, int, int]) -> float:
    """Cubic lattice constant (Å) of an FCC supercell built by :func:`relaxed_fcc`."""
    return float(np.mean(np.diag(np.asarray(atoms.cell)) / np.asarray(repeat)))


def self_force_constants(
    forcefield: ForceField,
    atoms: Atoms,
    *,
    atom: int = 0,
    displacement_A: float = 1e-3,
    device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.float64,
) -> np.ndarray:
    """(3,) Φ_{aα,aα} = −∂F_{aα}/∂x_{aα} in eV/Å² by central differences (six displaced copies, one pack)."""
    copies = []
    for alpha in range(3):
        for sign in (1.0, -1.0):
            moved = atoms.copy()
            moved.positions[atom, alpha] += sign * displacement_A
            copies.append(moved)
    state = state_from_atoms(copies, device=torch.device(device), dtype=dtype)
    forces = forcefield.forward(state, compute_stress=False).forces.detach().cpu().double().numpy()
    n = len(atoms)
    out = np.empty(3)
    for alpha in range(3):
        plus = forces[(2 * alpha) * n + atom, alpha]
        minus = forces[(2 * alpha + 1) * n + atom, alpha]
        out[alpha] = -(plus - minus) / (2 * displacement_A)
    return out


def debye_frequency_THz(
    forcefield: ForceField,
    atoms: Atoms,
    *,
    displacement_A: float = 1e-3,
    device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.float64,
) -> float:
    """ν_D (THz = 1/ps) of a monatomic crystal from the second moment of its phonon spectrum."""
    phi = self_force_constants(forcefield, atoms, displacement_A=displacement_A, device=device, dtype=dtype)
    mass_amu = float(atoms.get_masses()[0])
    omega2_per_fs2 = phi.sum() / (3.0 * mass_amu) * ACCEL_A_PER_FS2_PER_EV_PER_A_AMU
    if omega2_per_fs2 <= 0:
        return float("nan")
    return math.sqrt(5.0 / 3.0 * omega2_per_fs2) / (2.0 * math.pi) * 1000.0
