"""The GNN evaluated literally, one directed edge at a time, as an ASE calculator.

This is how the seeds run their GNN-MD: one calculator per trajectory, the graph rebuilt
from scratch at every call (full, directed neighbour list), every message
m_{j→i} = Φ(v_j + e_ij + v_i) ⊙ v_j and every edge MLP evaluated per directed edge, and the
decoder applied per directed edge. It computes the same function as
:class:`~hts_mlff.forcefields.gnn.GNNForceField` (a test checks it) at about twice the
arithmetic, without the engine's tabulation, half list or Verlet skin: it is the baseline of
``benchmarks/gnn_md_throughput.py`` and a cross-check of the optimised model.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import torch
from ase.calculators.calculator import Calculator, all_changes
from ase.neighborlist import neighbor_list

from hts_mlff.forcefields.gnn import GNNForceField, cosine_cutoff


def literal_forces(forcefield: GNNForceField, atoms) -> np.ndarray:
    """(n, 3) forces in eV/Å of the direct GNN, by eq. 2–4 on the directed graph."""
    module, config = forcefield.module, forcefield.gnn_config
    if config.conservative:
        raise ValueError("the literal evaluation covers the seeds' direct-force model only")
    dtype = next(module.parameters()).dtype
    i, j, d = neighbor_list("ijD", atoms, config.cutoff_A)  # every pair in both directions
    i_t, j_t = torch.as_tensor(i), torch.as_tensor(j)
    vectors = torch.as_tensor(d, dtype=dtype)
    with torch.no_grad():
        r = torch.linalg.vector_norm(vectors, dim=1)
        species = forcefield.species_index(torch.as_tensor(atoms.numbers))
        v = module.node_encoder(torch.nn.functional.one_hot(species, len(config.species)).to(dtype))
        rbf = torch.exp(-(((r[:, None] - module.rbf_centers_A) / config.rbf_width_A) ** 2))
        e0 = module.edge_encoder(rbf)
        e = e0
        envelope = cosine_cutoff(r, config.cutoff_A)[:, None]
        for layer in range(config.n_layers):
            messages = module.message[layer](v[j_t] + e + v[i_t]) * v[j_t] * envelope
            aggregated = torch.zeros_like(v).index_add_(0, i_t, messages)
            v = module.update[layer](v + aggregated / config.aggregation_norm) + v
            e = module.edge_layers[layer](e0)
        weights = module.decoder(v[i_t] + v[j_t] + e)[:, 0] * envelope[:, 0] * config.force_scale_eV_per_A
        forces = torch.zeros(len(atoms), 3, dtype=dtype).index_add_(0, i_t, vectors * (weights / r)[:, None])
    return forces.double().numpy()


class LiteralGNNCalculator(Calculator):
    """ASE calculator running :func:`literal_forces` (forces only; the direct model has no energy)."""

    implemented_properties: ClassVar[list[str]] = ["energy", "free_energy", "forces"]

    def __init__(self, forcefield: GNNForceField) -> None:
        super().__init__()
        self.forcefield = forcefield

    def calculate(self, atoms=None, properties=("forces",), system_changes=all_changes) -> None:
        super().calculate(atoms, properties, system_changes)
        forces = literal_forces(self.forcefield, self.atoms)
        self.results = {"energy": 0.0, "free_energy": 0.0, "forces": forces}
