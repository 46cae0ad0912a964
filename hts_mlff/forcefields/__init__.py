"""Force fields: importable objects implementing the engine's contract.

>>> from hts_mlff.forcefields import LennardJones, load
>>> lj = LennardJones(epsilon_eV=0.010327, sigma_A=3.405, cutoff_A=8.5, shift=True)
>>> gnn = load("models/model-b-small.pt")          # a GNN checkpoint
>>> atoms.calc = as_ase_calculator(gnn)
"""

from hts_mlff.engine.forcefield import ForceField, ForceOutput, check_forcefield
from hts_mlff.forcefields.adapters import AseCalculatorForceField, TorchSimForceField
from hts_mlff.forcefields.ase_calculator import ForceFieldCalculator, as_ase_calculator
from hts_mlff.forcefields.buckingham_dsf import BuckinghamDSF, BuckinghamPair
from hts_mlff.forcefields.checkpoint import CheckpointError, load, save_checkpoint
from hts_mlff.forcefields.gnn import GNNConfig, GNNForceField
from hts_mlff.forcefields.lennard_jones import LennardJones, PairParameters

__all__ = [
    "AseCalculatorForceField",
    "BuckinghamDSF",
    "BuckinghamPair",
    "CheckpointError",
    "ForceField",
    "ForceFieldCalculator",
    "ForceOutput",
    "GNNConfig",
    "GNNForceField",
    "LennardJones",
    "PairParameters",
    "TorchSimForceField",
    "as_ase_calculator",
    "check_forcefield",
    "load",
    "save_checkpoint",
]
