"""Force fields a user already has, behind the engine's contract.

* :class:`AseCalculatorForceField` — any ASE Calculator. The pack is looped one replica at
  a time through ``atoms.calc`` (numpy round trips, no batching): slow, but universal. Use
  it to screen a calculator that has no torch implementation, or as a cross-check.
* :class:`TorchSimForceField` — a TorchSim ``ModelInterface`` model (``torch-sim-atomistic``,
  optional). Batched: the whole pack goes to the model as one ``SimState``.

(The other direction — every hts_mlff force field as an ASE Calculator — is
:func:`hts_mlff.forcefields.ase_calculator.as_ase_calculator`.)
"""

from __future__ import annotations

import importlib
import json
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from ase import Atoms

from hts_mlff.engine.forcefield import ForceField, ForceOutput, weights_digest
from hts_mlff.engine.neighbors import NeighborList
from hts_mlff.engine.state import BatchState


def import_object(path: str) -> Any:
    """``"package.module:attribute"`` → the attribute (a class or factory)."""
    module_name, _, attribute = path.partition(":")
    if not module_name or not attribute:
        raise ValueError(f"{path!r}: expected 'package.module:attribute'")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ValueError(f"{path!r}: cannot import {module_name!r} ({exc})") from None
    target: Any = module
    for part in attribute.split("."):
        if not hasattr(target, part):
            raise ValueError(f"{path!r}: {module_name!r} has no attribute {attribute!r}")
        target = getattr(target, part)
    return target


def require_torchsim() -> None:
    """ImportError with the install line when the optional ``torch-sim-atomistic`` is missing."""
    try:
        import torch_sim  # noqa: F401
    except ImportError as exc:
        raise ImportError("TorchSim models need the optional extra: pip install torch-sim-atomistic") from exc


def _stress_from_voigt(voigt: np.ndarray) -> np.ndarray:
    """ASE's (xx, yy, zz, yz, xz, xy) → (3, 3)."""
    xx, yy, zz, yz, xz, xy = voigt
    return np.array([[xx, xy, xz], [xy, yy, yz], [xz, yz, zz]])


class AseCalculatorForceField(ForceField):
    """Any ASE Calculator as an engine force field, evaluated one replica at a time.

    Args:
        make_calculator: returns a fresh calculator (called once per replica slot).
        description: JSON-serialisable identity (class path + parameters) for the checksum.
        cutoff_A: the calculator's range, only used to size the engine's neighbour list
            (the calculator builds its own neighbours); 0 is fine.
    """

    def __init__(
        self, make_calculator: Callable[[], Any], *, description: dict[str, Any], cutoff_A: float = 0.0
    ) -> None:
        self.make_calculator = make_calculator
        self.description = description
        self.cutoff_A = float(cutoff_A)
        self._calculators: list[Any] = []

    def config(self) -> dict[str, Any]:
        return {"ase_calculator": self.description}

    def forward(
        self, state: BatchState, *, neighbors: NeighborList | None = None, compute_stress: bool = True
    ) -> ForceOutput:
        """One replica at a time through its calculator (which finds its own neighbours)."""
        positions = state.positions.detach().cpu().double().numpy()
        numbers = state.atomic_numbers.cpu().numpy()
        cells = state.cell.detach().cpu().double().numpy()
        offsets = state.system_offsets().tolist()
        while len(self._calculators) < state.n_systems:
            self._calculators.append(self.make_calculator())
        energy = np.zeros(state.n_systems)
        forces = np.zeros_like(positions)
        stress = np.zeros((state.n_systems, 3, 3))
        for s in range(state.n_systems):
            lo, hi = offsets[s], offsets[s + 1]
            atoms = Atoms(numbers=numbers[lo:hi], positions=positions[lo:hi], cell=cells[s], pbc=True)
            atoms.calc = self._calculators[s]
            energy[s] = atoms.get_potential_energy()
            forces[lo:hi] = atoms.get_forces()
            if compute_stress:
                stress[s] = _stress_from_voigt(atoms.get_stress(voigt=True))
        as_t = lambda a: torch.as_tensor(a, dtype=state.dtype, device=state.device)  # noqa: E731
        return ForceOutput(energy=as_t(energy), forces=as_t(forces), stress=as_t(stress) if compute_stress else None)


class TorchSimForceField(ForceField):
    """A TorchSim ``ModelInterface`` model as an engine force field (needs ``torch-sim-atomistic``).

    Args:
        model: the TorchSim model (it fixes its own device and dtype).
        description: JSON-serialisable identity for the checksum (default: class name).
        cutoff_A: the model's range, used only to size the engine's neighbour list.
    """

    def __init__(self, model: Any, *, description: dict[str, Any] | None = None, cutoff_A: float = 0.0) -> None:
        try:
            from torch_sim.state import SimState
        except ImportError as exc:  # pragma: no cover - exercised only without the extra
            raise ImportError("TorchSim models need the optional extra: pip install torch-sim-atomistic") from exc
        self._sim_state = SimState
        self.model = model
        self.description = description or {"class": f"{type(model).__module__}.{type(model).__qualname__}"}
        self.cutoff_A = float(cutoff_A)

    def config(self) -> dict[str, Any]:
        return {"torchsim": self.description, "weights_blake2b": weights_digest(self.model)}

    def forward(
        self, state: BatchState, *, neighbors: NeighborList | None = None, compute_stress: bool = True
    ) -> ForceOutput:
        """The whole pack through the model in one call (it finds its own neighbours)."""
        dev, dtype = self.model.device, self.model.dtype
        sim = self._sim_state(
            positions=state.positions.detach().to(dev, dtype),
            masses=state.masses.to(dev, dtype),
            cell=state.cell.detach().transpose(1, 2).to(dev, dtype),  # TorchSim: column vectors
            pbc=True,
            atomic_numbers=state.atomic_numbers.to(dev),
            system_idx=state.system_idx.to(dev),
        )
        out = self.model(sim)
        back = lambda t: t.detach().to(state.device, state.dtype)  # noqa: E731
        stress = out.get("stress")
        if compute_stress and stress is None:
            raise ValueError(f"{self.description}: the TorchSim model returns no stress (set compute_stress=True)")
        # TorchSim's stress is ASE's σ = (1/V) ∂E/∂ε: the same sign convention as ours.
        return ForceOutput(
            energy=back(out["energy"]).reshape(-1),
            forces=back(out["forces"]),
            stress=back(stress) if compute_stress else None,
        )


def describe(path: str, parameters: dict[str, Any]) -> dict[str, Any]:
    """Identity of an imported factory + parameters, JSON-normalised."""
    return json.loads(json.dumps({"factory": path, "parameters": parameters}, sort_keys=True, default=str))
