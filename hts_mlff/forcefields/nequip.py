"""NequIP and Allegro models (a ``nequip-package`` ``.nequip.zip`` or a training checkpoint
``.ckpt``) as engine force fields, natively batched.

The pack is one NequIP batch (``batch``, ``num_atoms``, per-system cells): the engine's own
neighbour list on the state's device gives the directed edges
(:func:`~hts_mlff.forcefields.graph_edges.directed_edges`), handed in as ``edge_index`` =
[sender, receiver] with integer ``edge_cell_shift`` — NequIP's edge vector is
r_receiver − r_sender + shift · cell, as ours — so no NequIP neighbour-list transform runs.
Each atom's ``atom_types`` row comes from the model's type names (chemical symbols unless a
``species_to_type`` map says otherwise). NequIP computes in the model's own dtype
(``model_dtype`` of its metadata); its stress is (1/V) ∂E/∂ε with ASE's sign, as ours.

Both file kinds are code when loaded (a torch package, a pickled checkpoint): approved like
any model file (:mod:`hts_mlff.spec.trust`). Needs the optional extra ``[nequip]`` (e3nn ≥ 0.5:
not in the same environment as ``[mace]``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from hts_mlff.engine.forcefield import ForceOutput
from hts_mlff.engine.neighbors import NeighborList
from hts_mlff.engine.state import BatchState
from hts_mlff.forcefields.graph_edges import (
    GraphModelForceField,
    directed_edges,
    import_package,
    species_lookup,
    torch_globals_restored,
)
from hts_mlff.spec.trust import file_digest


class NequIPForceField(GraphModelForceField):
    """A NequIP-framework ``GraphModel`` (NequIP, Allegro) driven over whole packs.

    Args:
        model: the loaded model (``load_saved_model``), in eval mode.
        cutoff_A: its ``r_max``. type_atomic_numbers: the atomic number of each model type, in
            type order. dtype: the model's dtype.
        description: JSON identity (file, digest) for the checksum.
    """

    family = "nequip"

    def __init__(
        self,
        model: torch.nn.Module,
        *,
        cutoff_A: float,
        type_atomic_numbers: list[int],
        dtype: torch.dtype,
        description: dict[str, Any] | None = None,
    ) -> None:
        self._keys = import_package("nequip.data", extra="nequip").AtomicDataDict
        self._hold(model, description=description)
        self.cutoff_A = float(cutoff_A)
        self.type_atomic_numbers = list(type_atomic_numbers)
        self.compute_dtype = dtype

    def forward(
        self, state: BatchState, *, neighbors: NeighborList | None = None, compute_stress: bool = True
    ) -> ForceOutput:
        """Energies (eV), forces (eV/Å) and stresses (eV/Å³) of the whole pack in one forward."""
        key, dtype = self._keys, self.compute_dtype
        model = self.model_on(state.device)
        types = species_lookup(self.type_atomic_numbers, state.atomic_numbers, model="the NequIP model")
        edges = directed_edges(state, neighbors, cutoff_A=self.cutoff_A)
        data = {
            key.POSITIONS_KEY: state.positions.detach().to(dtype).clone(),
            key.CELL_KEY: state.cell.detach().to(dtype).clone(),
            key.PBC_KEY: torch.ones(state.n_systems, 3, dtype=torch.bool, device=state.device),
            key.BATCH_KEY: state.system_idx,
            key.NUM_NODES_KEY: torch.bincount(state.system_idx, minlength=state.n_systems),
            key.ATOM_TYPE_KEY: types,
            key.EDGE_INDEX_KEY: torch.stack([edges.sender, edges.receiver]),
            key.EDGE_CELL_SHIFT_KEY: edges.unit_shifts.to(dtype),
        }
        with torch.enable_grad():
            out = model(data)
        energy = out[key.TOTAL_ENERGY_KEY].detach().reshape(-1).to(state.dtype)
        forces = out[key.FORCE_KEY].detach().to(state.dtype)
        stress = out[key.STRESS_KEY].detach().reshape(-1, 3, 3).to(state.dtype) if compute_stress else None
        return ForceOutput(energy=energy, forces=forces, stress=stress)


def load_nequip(path: Path, *, species_to_type: dict[str, str] | None = None) -> NequIPForceField:
    """The NequIP force field of a package or checkpoint file (approve the file first: it is code)."""
    from ase.data import atomic_numbers

    load_utils = import_package("nequip.model.saved_models.load_utils", extra="nequip")
    global_state = import_package("nequip.utils.global_state", extra="nequip")
    graph_model = import_package("nequip.nn.graph_model", extra="nequip")
    with torch_globals_restored():  # set_global_state makes float64 the default dtype and seeds torch
        global_state.set_global_state()
        model = load_utils.load_saved_model(str(path), compile_mode="eager")
    metadata = model.metadata
    type_names = metadata[graph_model.TYPE_NAMES_KEY].split(" ")
    symbol_of = {t: t for t in type_names}
    for symbol, type_name in (species_to_type or {}).items():
        if type_name not in type_names:
            raise ValueError(f"species_to_type: {type_name!r} is not a type of the model ({type_names})")
        symbol_of[type_name] = symbol
    unknown = [symbol_of[t] for t in type_names if symbol_of[t] not in atomic_numbers]
    if unknown:
        raise ValueError(f"the NequIP model's types {unknown} are not chemical symbols: give species_to_type")
    return NequIPForceField(
        model,
        cutoff_A=float(metadata[graph_model.R_MAX_KEY]),
        type_atomic_numbers=[atomic_numbers[symbol_of[t]] for t in type_names],
        dtype={"float32": torch.float32, "float64": torch.float64}[metadata[graph_model.MODEL_DTYPE_KEY]],
        description={"file": Path(path).name, "blake2b": file_digest(path)},
    )


def build_nequip(spec: Any, base_dir: Path) -> NequIPForceField:
    """``kind: nequip`` (:class:`hts_mlff.spec.model.NequIPSpec`); the file was approved by the registry."""
    return load_nequip(base_dir / spec.model, species_to_type=spec.species_to_type)
