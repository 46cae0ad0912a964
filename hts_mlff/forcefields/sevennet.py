"""SevenNet models (the pretrained ``7net-0``, ``7net-l3i5``, ``7net-mf-0`` shipped in the
``sevenn`` wheel, or a user's checkpoint) as engine force fields, natively batched.

The whole pack is one SevenNet batch: every atom carries its system (``batch``), every edge
comes from the engine's own neighbour list on the state's device
(:func:`~hts_mlff.forcefields.graph_edges.directed_edges`), handed to the model as edge
vectors r_dst − r_src + shift. SevenNet differentiates its energy with respect to those
vectors: forces are the edge gradients scattered to both ends, and its stress is
−(1/V) Σ r ⊗ ∂E/∂r, the *opposite* of ASE's sign (its ASE calculator negates it); here it is
negated back to σ = (1/V) ∂E/∂ε, the engine's convention. It computes in float32
(:data:`COMPUTE_DTYPE`); results come back in the state's dtype.

A pretrained name loads the checkpoint shipped inside the installed ``sevenn`` package (its
bytes enter the task ids; trusted as the package is); a checkpoint file of the user's is a
pickle, approved like any model file that is code (:mod:`hts_mlff.spec.trust`). Needs the
optional extra ``[sevennet]`` (e3nn ≥ 0.5: not in the same environment as ``[mace]``).
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
    environment_restored,
    import_package,
    species_lookup,
)
from hts_mlff.spec.trust import file_digest

#: SevenNet computes in float32 whatever the campaign's dtype: its e3nn tensor products are
#: traced with float32 constants (converting the module to float64 fails in them).
COMPUTE_DTYPE = torch.float32

#: Voigt order of SevenNet's stress: xx, yy, zz, xy, yz, zx.
_VOIGT = ((0, 0), (1, 1), (2, 2), (0, 1), (1, 2), (2, 0))


def pretrained_checkpoint(name: str) -> Path:
    """The checkpoint file the installed ``sevenn`` ships for a pretrained ``name`` (ValueError
    for a name it does not know; ImportError naming the extra when it is not installed)."""
    util = import_package("sevenn.util", extra="sevennet")
    with environment_restored():
        return Path(util.pretrained_name_to_path(name))


class SevenNetForceField(GraphModelForceField):
    """A SevenNet ``AtomGraphSequential`` driven over whole packs.

    Args:
        model: the built model (``SevenNetCheckpoint.build_model()``).
        cutoff_A: its cutoff. type_map: atomic number → its one-hot row (the checkpoint's).
        modal: the fidelity of a multi-fidelity model (``7net-mf-0``: e.g. "PBE").
        description: JSON identity (checkpoint, digest) for the checksum.
    """

    family = "sevennet"

    def __init__(
        self,
        model: torch.nn.Module,
        *,
        cutoff_A: float,
        type_map: dict[int, int],
        modal: str | None = None,
        description: dict[str, Any] | None = None,
    ) -> None:
        self._keys = import_package("sevenn._keys", extra="sevennet")
        self._data_class = import_package("sevenn.atom_graph_data", extra="sevennet").AtomGraphData
        model.set_is_batch_data(True)
        self._hold(model, description=description)
        self.cutoff_A = float(cutoff_A)
        self.atomic_numbers = sorted(int(z) for z in type_map)
        modal_map = getattr(model, "modal_map", None) or {}
        if modal_map and modal not in modal_map:
            raise ValueError(f"the SevenNet model is multi-fidelity: modal must be one of {sorted(modal_map)}")
        self.modal = modal if modal_map else None

    def config(self) -> dict[str, Any]:
        return {**super().config(), "modal": self.modal}

    def forward(
        self, state: BatchState, *, neighbors: NeighborList | None = None, compute_stress: bool = True
    ) -> ForceOutput:
        """Energies (eV), forces (eV/Å) and stresses (eV/Å³) of the whole pack in one forward."""
        key = self._keys
        dtype = COMPUTE_DTYPE
        model = self.model_on(state.device)
        species_lookup(self.atomic_numbers, state.atomic_numbers, model="the SevenNet model")
        edges = directed_edges(state, neighbors, cutoff_A=self.cutoff_A)
        positions = state.positions.detach()
        z = state.atomic_numbers.to(torch.int64)
        fields = {  # geometry in the state's dtype, then rounded once to the model's
            key.ATOMIC_NUMBERS: z,
            key.EDGE_VEC: edges.vectors_A(positions, state.cell.detach()).to(dtype).clone(),
            key.CELL_VOLUME: state.volume.detach().to(dtype),
            key.NUM_ATOMS: torch.bincount(state.system_idx, minlength=state.n_systems),
            key.BATCH: state.system_idx,
        }
        if self.modal is not None:
            fields[key.DATA_MODALITY] = [self.modal] * state.n_systems
        data = self._data_class(
            x=z, edge_index=torch.stack([edges.sender, edges.receiver]), pos=positions.to(dtype), **fields
        )
        with torch.enable_grad():
            out = model(data)
        energy = out[key.PRED_TOTAL_ENERGY].detach().reshape(-1).to(state.dtype)
        forces = out[key.PRED_FORCE].detach().to(state.dtype)
        stress = None
        if compute_stress:
            voigt = -out[key.PRED_STRESS].detach().to(state.dtype)  # SevenNet's sign is the opposite of ours
            stress = torch.zeros(state.n_systems, 3, 3, dtype=state.dtype, device=state.device)
            for column, (a, b) in enumerate(_VOIGT):
                stress[:, a, b] = stress[:, b, a] = voigt[:, column]
        return ForceOutput(energy=energy, forces=forces, stress=stress)


def load_sevennet(model: str, *, base_dir: Path, modal: str | None = None) -> SevenNetForceField:
    """The SevenNet force field of a pretrained name or a checkpoint file (approve a file first)."""
    checkpoint_module = import_package("sevenn.checkpoint", extra="sevennet")
    path = base_dir / model if is_checkpoint_path(model) else pretrained_checkpoint(model)
    with environment_restored():
        checkpoint = checkpoint_module.SevenNetCheckpoint(str(path))
        built = checkpoint.build_model()
    config = checkpoint.config
    return SevenNetForceField(
        built,
        cutoff_A=float(config["cutoff"]),
        type_map={int(z): int(i) for z, i in config["_type_map"].items()},
        modal=modal,
        description={"model": model if not is_checkpoint_path(model) else path.name, "blake2b": file_digest(path)},
    )


def is_checkpoint_path(model: str) -> bool:
    """A checkpoint file (a path: it has a folder or a suffix) rather than a pretrained name."""
    from hts_mlff.spec.model import SevenNetSpec

    return SevenNetSpec(kind="sevennet", model=model)._is_file()


def build_sevennet(spec: Any, base_dir: Path) -> SevenNetForceField:
    """``kind: sevennet`` (:class:`hts_mlff.spec.model.SevenNetSpec`); a file was approved by the registry."""
    return load_sevennet(spec.model, base_dir=base_dir, modal=spec.modal)
