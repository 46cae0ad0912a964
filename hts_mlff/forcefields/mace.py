"""MACE-family models (MACE, ScaleShiftMACE, BOTNet from ``mace_run_train``) as engine force fields.

The whole pack goes through the model in one forward: MACE reads a batch of graphs as one
disjoint graph (``batch``: the system of each atom, ``ptr``: where each system starts), so the
engine's pack is that batch as it stands. The edges are the engine's own neighbour list on the
state's device (:func:`~hts_mlff.forcefields.graph_edges.directed_edges`), with MACE's
conventions: ``edge_index = [sender, receiver]``, vector = r_receiver − r_sender + shift, and
integer ``unit_shifts`` with the flattened ``cell`` so that MACE's symmetric displacement gives
the stress. MACE returns the stress as (1/V) ∂E/∂ε, ASE's sign and ours (negative under
compression).

The model computes in the campaign's dtype (``execution.dtype``; ``compute_dtype`` in the spec
overrides it); MACE's own default for a file trained in float64 is float64.

A ``.model`` file is a pickle (or a TorchScript archive): loading it runs code, so
:func:`hts_mlff.forcefields.kinds.build_forcefield` loads it only once approved. Needs the
optional extra ``[mace]`` (``mace-torch``; it pins ``e3nn==0.4.4``, so it cannot share an
environment with ``[nequip]``/``[sevennet]``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from hts_mlff.engine.forcefield import ForceOutput, weights_digest
from hts_mlff.engine.neighbors import NeighborList
from hts_mlff.engine.state import BatchState
from hts_mlff.forcefields.graph_edges import (
    GraphModelForceField,
    directed_edges,
    import_package,
    load_pickled_model,
    species_lookup,
)
from hts_mlff.spec.trust import file_digest


class MaceForceField(GraphModelForceField):
    """A MACE-family ``torch.nn.Module`` driven over whole packs.

    Args:
        model: the loaded model (``mace.modules.MACE`` or a subclass, or its TorchScript form).
        head: the head to evaluate for a multi-head model (default: the model's first head).
        compute_dtype: dtype of the evaluation (None: the state's dtype).
        description: JSON identity (the model file and its digest) for the checksum.
    """

    family = "mace"

    def __init__(
        self,
        model: torch.nn.Module,
        *,
        head: str | None = None,
        compute_dtype: torch.dtype | None = None,
        description: dict[str, Any] | None = None,
    ) -> None:
        self._hold(
            model,
            description=description or {"class": type(model).__qualname__, "weights_blake2b": weights_digest(model)},
        )
        self.cutoff_A = float(model.r_max)
        self.atomic_numbers = [int(z) for z in model.atomic_numbers.tolist()]
        heads = list(getattr(model, "heads", None) or ["default"])
        if head is not None and head not in heads:
            raise ValueError(f"the MACE model has heads {heads}; head {head!r} is not one of them")
        self.head = head or heads[0]
        self.head_index = heads.index(self.head)
        self.compute_dtype = compute_dtype

    def config(self) -> dict[str, Any]:
        return {**super().config(), "head": self.head, "compute_dtype": str(self.compute_dtype)}

    def graph(self, state: BatchState, *, neighbors: NeighborList | None, dtype: torch.dtype) -> dict[str, Any]:
        """The pack as MACE's input dictionary (every tensor on the state's device, in ``dtype``)."""
        dev = state.device
        edges = directed_edges(state, neighbors, cutoff_A=self.cutoff_A)
        index = species_lookup(self.atomic_numbers, state.atomic_numbers, model="the MACE model")
        node_attrs = torch.nn.functional.one_hot(index, len(self.atomic_numbers)).to(dtype)
        counts = torch.bincount(state.system_idx, minlength=state.n_systems)
        ptr = torch.zeros(state.n_systems + 1, dtype=torch.int64, device=dev)
        ptr[1:] = torch.cumsum(counts, 0)
        cell = state.cell.detach().to(dtype)
        unit_shifts = edges.unit_shifts.to(dtype)
        return {
            "positions": state.positions.detach().to(dtype).clone(),
            "node_attrs": node_attrs,
            "edge_index": torch.stack([edges.sender, edges.receiver]),
            "unit_shifts": unit_shifts,
            "shifts": torch.einsum("ek,ekl->el", unit_shifts, cell[edges.system]),
            "cell": cell.reshape(-1, 3),
            "batch": state.system_idx,
            "ptr": ptr,
            "head": torch.full((state.n_systems,), self.head_index, dtype=torch.int64, device=dev),
        }

    def forward(
        self, state: BatchState, *, neighbors: NeighborList | None = None, compute_stress: bool = True
    ) -> ForceOutput:
        """Energies (eV), forces (eV/Å) and stresses (eV/Å³) of the whole pack in one forward."""
        dtype = self.compute_dtype or state.dtype
        model = self.model_on(state.device, dtype)
        data = self.graph(state, neighbors=neighbors, dtype=dtype)
        with torch.enable_grad():
            out = model(data, training=False, compute_force=True, compute_stress=compute_stress)
        back = lambda t: t.detach().to(state.dtype)  # noqa: E731
        return ForceOutput(
            energy=back(out["energy"]).reshape(-1),
            forces=back(out["forces"]),
            stress=back(out["stress"]).reshape(-1, 3, 3) if compute_stress else None,
        )


def build_mace(spec: Any, base_dir: Path) -> MaceForceField:
    """``kind: mace`` (:class:`hts_mlff.spec.model.MaceSpec`); the file was approved by the registry."""
    return load_mace(base_dir / spec.model, head=spec.head, compute_dtype=spec.compute_dtype)


def load_mace(path: Path, *, head: str | None = None, compute_dtype: str | None = None) -> MaceForceField:
    """The MACE force field of a model file (approve it first: it is a pickle)."""
    # mace.modules at once: mace lets e3nn 0.4.4 unpickle its constants while it is imported, and
    # the pickle names mace.modules' classes
    import_package("mace.modules", extra="mace")
    model = load_pickled_model(path)
    dtype = {None: None, "float32": torch.float32, "float64": torch.float64}[compute_dtype]
    digest = file_digest(path)
    return MaceForceField(
        model,
        head=head,
        compute_dtype=dtype,
        description={"file": Path(path).name, "blake2b": digest, "class": type(model).__qualname__},
    )
