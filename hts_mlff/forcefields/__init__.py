"""Force fields: importable objects implementing the engine's contract.

>>> from hts_mlff.forcefields import LennardJones
>>> lj = LennardJones(epsilon_eV=0.010327, sigma_A=3.405, cutoff_A=8.5, shift=True)
>>> calc = lj.as_ase_calculator()
"""

from hts_mlff.engine.forcefield import ForceField, ForceOutput, check_forcefield
from hts_mlff.forcefields.lennard_jones import LennardJones, PairParameters

__all__ = ["ForceField", "ForceOutput", "LennardJones", "PairParameters", "check_forcefield"]
