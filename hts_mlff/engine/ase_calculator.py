"""Every hts_mlff force field as an ASE Calculator, so ASE optimisers, NEB and MD drive it.

Part of the engine's contract (:meth:`hts_mlff.engine.forcefield.ForceField.as_ase_calculator`);
the other direction, an ASE calculator as a force field, is :mod:`hts_mlff.forcefields.adapters`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

import torch
from ase.calculators.calculator import Calculator, all_changes

from hts_mlff.engine.state import state_from_atoms

if TYPE_CHECKING:
    from hts_mlff.engine.forcefield import ForceField


class ForceFieldCalculator(Calculator):
    """ASE Calculator wrapping a :class:`ForceField` (energy eV, forces eV/Å, stress eV/Å³)."""

    implemented_properties: ClassVar[list[str]] = ["energy", "free_energy", "forces", "stress"]

    def __init__(self, forcefield: ForceField, *, device: str = "cpu", dtype: torch.dtype = torch.float64) -> None:
        super().__init__()
        self.forcefield = forcefield
        self.device = torch.device(device)
        self.dtype = dtype

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes) -> None:
        super().calculate(atoms, properties, system_changes)
        if not self.atoms.pbc.all():
            raise ValueError("hts_mlff force fields need a fully periodic cell (atoms.pbc all True)")
        state = state_from_atoms([self.atoms], device=self.device, dtype=self.dtype)
        out = self.forcefield.forward(state, compute_stress=True)
        energy = float(out.energy[0])
        stress = out.stress[0].detach().cpu().double().numpy()
        self.results = {
            "energy": energy,
            "free_energy": energy,
            "forces": out.forces.detach().cpu().double().numpy(),
            "stress": stress.reshape(9)[[0, 4, 8, 5, 2, 1]],
        }
