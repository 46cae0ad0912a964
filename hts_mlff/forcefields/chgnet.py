"""CHGNet (the pretrained 0.3.0, 0.2.0 and r2scan shipped in the ``chgnet`` wheel) as an engine
force field, on the engine's own neighbour list.

CHGNet reads a list of crystal graphs: the atom graph (directed edges within 6 Å: center,
neighbour, periodic image, each edge's undirected bond) and the bond graph (angles: ordered
pairs of distinct directed edges on the same center atom, both shorter than 3 Å). Here both
come from the engine's half list on the state's device, vectorised over the pack
(:func:`crystal_graphs`): half-list pair p is undirected bond p, its directed edges are p
(center i → neighbour j, image s) and p + P (j → i, −s). No pymatgen structure and no graph
converter run per step. The pack then goes through one CHGNet forward (CHGNet batches the
graphs itself).

CHGNet's outputs are converted to the engine's: its energy is per atom (× atoms per system),
its stress is (1/V) ∂E/∂ε in GPa with ASE's sign (× ``ase.units.GPa`` → eV/Å³). It computes
in float32. Needs the optional extra ``[chgnet]``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from hts_mlff.engine.forcefield import ForceOutput
from hts_mlff.engine.neighbors import NeighborList, pairs_for
from hts_mlff.engine.state import BatchState
from hts_mlff.forcefields.graph_edges import GraphModelForceField, environment_restored, import_package

#: CHGNet computes in float32 (its ``TORCH_DTYPE``).
COMPUTE_DTYPE = torch.float32


def angle_pairs(center: torch.Tensor, short: torch.Tensor, n_atoms: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Every ordered pair (a, b), a ≠ b, of the directed edges ``short`` that share a center.

    Args:
        center: (n_edges,) center atom of every directed edge.
        short: (n_short,) indices of the edges shorter than the bond-graph cutoff.
    Returns:
        (first, second): (n_angles,) edge indices, grouped by center in edge order.
    """
    c = center[short]
    order = torch.argsort(c, stable=True)
    short, c = short[order], c[order]
    counts = torch.bincount(c, minlength=n_atoms)
    starts = torch.cumsum(counts, 0) - counts
    per_edge = counts[c]
    owner = torch.repeat_interleave(torch.arange(short.numel(), device=short.device), per_edge)
    offset = torch.arange(owner.numel(), device=short.device) - torch.repeat_interleave(
        torch.cumsum(per_edge, 0) - per_edge, per_edge
    )
    partner = starts[c][owner] + offset
    keep = partner != owner
    return short[owner[keep]], short[partner[keep]]


class CHGNetForceField(GraphModelForceField):
    """A CHGNet model driven over whole packs on the engine's neighbour list.

    Args:
        model: ``chgnet.model.CHGNet`` (loaded, e.g. ``CHGNet.load("0.3.0")``).
        description: JSON identity (pretrained name, package version) for the checksum.
    """

    family = "chgnet"

    def __init__(self, model: torch.nn.Module, *, description: dict[str, Any] | None = None) -> None:
        self._graph_class = import_package("chgnet.graph.crystalgraph", extra="chgnet").CrystalGraph
        self._hold(model, description=description)
        converter = model.graph_converter
        self.cutoff_A = float(converter.atom_graph_cutoff)
        self.bond_cutoff_A = float(converter.bond_graph_cutoff)

    def crystal_graphs(self, state: BatchState, *, neighbors: NeighborList | None) -> list[Any]:
        """The pack as CHGNet's crystal graphs (one per system, local atom indices, float32)."""
        nl = pairs_for(state, neighbors, cutoff_A=self.cutoff_A)
        with torch.no_grad():
            d = nl.pair_vectors_t(state)
            length = (d * d).sum(0).sqrt()
        keep = torch.nonzero(length < self.cutoff_A).squeeze(1)
        i, j = nl.pair_i.index_select(0, keep), nl.pair_j.index_select(0, keep)
        shift, system = nl.pair_shift.index_select(0, keep), nl.pair_system.index_select(0, keep)
        length = length.index_select(0, keep)
        graphs = []
        for k in range(state.n_systems):
            sl = state.system_slice(k)
            first = sl.start
            mine = torch.nonzero(system == k).squeeze(1)
            n_pairs = mine.numel()
            center = torch.cat([i[mine], j[mine]]) - first
            neighbour = torch.cat([j[mine], i[mine]]) - first
            image = torch.cat([shift[mine], -shift[mine]]).to(COMPUTE_DTYPE)
            undirected = torch.arange(n_pairs, device=state.device).repeat(2)
            short = torch.nonzero(length[mine].repeat(2) < self.bond_cutoff_A).squeeze(1)
            a, b = angle_pairs(center, short, sl.stop - sl.start)
            bond_graph = torch.stack([center[a], undirected[a], a, undirected[b], b], dim=1)
            lattice = state.cell[k].detach().to(torch.float64)
            fractional = state.positions[sl].detach().to(torch.float64) @ torch.linalg.inv(lattice)
            graphs.append(
                self._graph_class(
                    atomic_number=state.atomic_numbers[sl].to(torch.int32),
                    atom_frac_coord=fractional.to(COMPUTE_DTYPE).requires_grad_(True),  # forces: ∂E/∂r
                    atom_graph=torch.stack([center, neighbour], dim=1),
                    atom_graph_cutoff=self.cutoff_A,
                    neighbor_image=image,
                    directed2undirected=undirected,
                    undirected2directed=torch.arange(n_pairs, device=state.device),
                    bond_graph=bond_graph,
                    bond_graph_cutoff=self.bond_cutoff_A,
                    lattice=lattice.to(COMPUTE_DTYPE),
                )
            )
        return graphs

    def forward(
        self, state: BatchState, *, neighbors: NeighborList | None = None, compute_stress: bool = True
    ) -> ForceOutput:
        """Energies (eV), forces (eV/Å) and stresses (eV/Å³) of the whole pack in one forward."""
        from ase.units import GPa

        model = self.model_on(state.device)
        graphs = self.crystal_graphs(state, neighbors=neighbors)
        with torch.enable_grad():
            out = model(graphs, task="efs" if compute_stress else "ef")
        counts = torch.bincount(state.system_idx, minlength=state.n_systems).to(state.dtype)
        energy = out["e"].detach().reshape(-1).to(state.dtype)
        if model.is_intensive:
            energy = energy * counts
        forces = torch.cat([f.detach() for f in out["f"]]).to(state.dtype)
        stress = None
        if compute_stress:
            stress = torch.stack([s.detach().reshape(3, 3) for s in out["s"]]).to(state.dtype) * GPa
        return ForceOutput(energy=energy, forces=forces, stress=stress)


def load_chgnet(name: str) -> CHGNetForceField:
    """The CHGNet force field of a pretrained name the installed ``chgnet`` ships (0.3.0, 0.2.0,
    r2scan); loads offline."""
    model_module = import_package("chgnet.model", extra="chgnet")
    from importlib.metadata import version

    with environment_restored():
        model = model_module.CHGNet.load(model_name=name, use_device="cpu", verbose=False)
    return CHGNetForceField(model, description={"model": name, "chgnet": version("chgnet")})


def build_chgnet(spec: Any, base_dir: Path) -> CHGNetForceField:
    """``kind: chgnet`` (:class:`hts_mlff.spec.model.CHGNetSpec`)."""
    return load_chgnet(spec.model)
