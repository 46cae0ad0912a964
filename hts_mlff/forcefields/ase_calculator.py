"""Every hts_mlff force field as an ASE Calculator, so ASE optimisers, NEB and MD drive it.

>>> atoms.calc = as_ase_calculator(forcefield)

The other direction, an ASE calculator as a force field, is :mod:`hts_mlff.forcefields.adapters`.
"""

from __future__ import annotations

from typing import ClassVar

import torch
from ase.calculators.calculator import Calculator, PropertyNotImplementedError, all_changes

from hts_mlff.engine.forcefield import ForceField
from hts_mlff.engine.state import state_from_atoms


class ForceFieldCalculator(Calculator):
    """ASE Calculator wrapping a :class:`ForceField` (energy eV, forces eV/Å, stress eV/Å³).

    A force-only model (``provides_energy`` False, e.g. the direct-force GNN) implements forces
    and stress only: asking it for an energy raises ``PropertyNotImplementedError`` (it defines
    no potential energy; a 0 would be a wrong number).
    """

    implemented_properties: ClassVar[list[str]] = ["energy", "free_energy", "forces", "stress"]

    def __init__(self, forcefield: ForceField, *, device: str = "cpu", dtype: torch.dtype = torch.float64) -> None:
        super().__init__()
        self.forcefield = forcefield
        self.device = torch.device(device)
        self.dtype = dtype
        if not forcefield.provides_energy:
            self.implemented_properties = ["forces", "stress"]

    def get_property(self, name, atoms=None, allow_calculation=True):
        if name in ("energy", "free_energy", "energies") and not self.forcefield.provides_energy:
            raise PropertyNotImplementedError(
                f"{type(self.forcefield).__name__} is a force-only model: it defines no energy "
                "(use forces and stress; energy-based tools such as NEB energies or energy drift do not apply)"
            )
        return super().get_property(name, atoms, allow_calculation)

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes) -> None:
        super().calculate(atoms, properties, system_changes)
        if not self.atoms.pbc.all():
            raise ValueError("hts_mlff force fields need a fully periodic cell (atoms.pbc all True)")
        state = state_from_atoms([self.atoms], device=self.device, dtype=self.dtype)
        out = self.forcefield.forward(state, compute_stress=True)
        stress = out.stress[0].detach().cpu().double().numpy()
        self.results = {
            "forces": out.forces.detach().cpu().double().numpy(),
            "stress": stress.reshape(9)[[0, 4, 8, 5, 2, 1]],
        }
        if self.forcefield.provides_energy:
            self.results["energy"] = self.results["free_energy"] = float(out.energy[0])


def as_ase_calculator(
    forcefield: ForceField, *, device: str = "cpu", dtype: torch.dtype = torch.float64
) -> ForceFieldCalculator:
    """An ASE Calculator (energy, forces, stress) backed by ``forcefield``."""
    return ForceFieldCalculator(forcefield, device=device, dtype=dtype)
