"""The one force-field contract of the engine, and a checker for it.

A force field maps a :class:`BatchState` to per-system energies, per-atom forces and
per-system stresses::

    forward(state, *, neighbors=None, compute_stress=True) -> ForceOutput
        energy  (n_systems,)       eV
        forces  (n_atoms, 3)       eV/Å
        stress  (n_systems, 3, 3)  eV/Å³, ASE sign convention σ = (1/V) ∂E/∂ε
                                   (negative under compression; P_virial = −tr σ / 3)

Force fields that need neighbours declare ``cutoff_A`` and the layout they read
(``neighbor_layout``: "rows" for a compiled row kernel, "pairs" for index tensors); the engine
hands them a Verlet list covering the cutoff (:func:`hts_mlff.engine.neighbors.neighbor_list_for`,
updated for the state), and a force field called without one builds its own
(:func:`hts_mlff.engine.neighbors.pairs_for`).
"""

from __future__ import annotations

import hashlib
import inspect
import json
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from hts_mlff.engine.neighbors import NeighborList
from hts_mlff.engine.state import BatchState


@dataclass
class ForceOutput:
    """Result of one force-field evaluation (see module docstring for shapes and units).

    Force fields with a compiled row kernel also hand the stability guard what it needs from
    the same pass: ``min_pair_distance_A`` (n_systems,) closest pair of the neighbour list and
    ``max_force_eV_per_A`` (n_systems,) largest force (None: the guard computes them).
    """

    energy: torch.Tensor
    forces: torch.Tensor
    stress: torch.Tensor | None
    min_pair_distance_A: torch.Tensor | None = None
    max_force_eV_per_A: torch.Tensor | None = None
    #: Per-atom energy partition of a compiled pair potential on a stress step: (n_atoms,) eV
    #: (site terms included) and (n_atoms, 3, 3) eV, half of each pair's energy and virial on
    #: each end; the output's own tensors (they outlive later evaluations). The heat current
    #: reads them.
    atom_energy: torch.Tensor | None = None
    atom_virial: torch.Tensor | None = None


class ForceField(ABC):
    """Base class of every force field the engine can drive."""

    #: Interaction range in Å; the engine's neighbour list covers it.
    cutoff_A: float = 0.0

    #: The list layout :meth:`forward` reads best: "rows" when it has a compiled path over
    #: per-atom neighbour rows (:mod:`hts_mlff.engine.kernels`; it falls back to pairs where the
    #: kernels do not run), else "pairs". A row list serves pairs too (same order, same bits).
    neighbor_layout: str = "pairs"

    #: On a CPU, run a pack's torch operations on one thread. Torch splits its parallel
    #: reductions by tensor size, so at more threads a replica's forces round differently in
    #: another pack (measured on SevenNet: 1e-8 eV/Å at two threads, bit for bit at one), and a
    #: resumed campaign, whose packs are formed anew, would not repeat its bits. Graph models of
    #: other packages set it; the cores go to more packs at once (``threads_per_worker``).
    single_threaded_on_cpu: bool = False

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        forward = cls.__dict__.get("forward")
        if forward is None or getattr(forward, "__isabstractmethod__", False):
            return
        parameters = inspect.signature(forward).parameters
        takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values())
        if "neighbors" not in parameters and not takes_any:
            raise TypeError(
                f"{cls.__module__}.{cls.__qualname__}.forward must accept the keyword argument "
                "'neighbors' (the engine's neighbour list, or None): "
                "forward(self, state, *, neighbors=None, compute_stress=True)"
            )

    @property
    def provides_energy(self) -> bool:
        """False for force-only models (their ``energy`` is a placeholder, not a potential)."""
        return True

    @abstractmethod
    def forward(
        self, state: BatchState, *, neighbors: NeighborList | None = None, compute_stress: bool = True
    ) -> ForceOutput:
        """Energies, forces and (optionally) stresses of every system in ``state``; ``neighbors``:
        a list covering ``cutoff_A``, current for ``state`` (None: the force field builds one)."""

    def __call__(
        self, state: BatchState, *, neighbors: NeighborList | None = None, compute_stress: bool = True
    ) -> ForceOutput:
        return self.forward(state, neighbors=neighbors, compute_stress=compute_stress)

    #: True where :meth:`heat_current` is defined (a per-atom energy partition exists).
    has_heat_current: bool = False

    def heat_current(
        self, state: BatchState, *, output: ForceOutput | None = None, neighbors: NeighborList | None = None
    ) -> torch.Tensor:
        """(n_systems, 3) heat current J = d/dt Σ_i r_i e_i in eV·Å/fs (Green–Kubo).

        ``output``: this force field's evaluation at the current positions; when it carries
        the per-atom partition (``atom_energy``, ``atom_virial``) no pair is visited again.
        ``neighbors``: the list of that evaluation (None: one is built).

        Needs a partition of the energy into per-atom terms and the forces between atoms
        (pair potentials: :class:`~hts_mlff.forcefields.LennardJones`). Many-body models define
        no unique partition; force-only models define no energy at all.
        """
        raise NotImplementedError(
            f"{type(self).__name__} defines no per-atom energy partition, so no heat current: "
            "Green–Kubo needs a pair potential (lennard_jones)"
        )

    @abstractmethod
    def config(self) -> dict[str, Any]:
        """JSON-serialisable description; with the weights it defines the checksum."""

    def checksum(self) -> str:
        """Content hash that changes whenever results could change."""
        payload = json.dumps({"class": type(self).__name__, **self.config()}, sort_keys=True)
        return hashlib.blake2b(payload.encode(), digest_size=16).hexdigest()


def weights_digest(module: torch.nn.Module) -> str:
    """blake2b-128 of a module's parameters and buffers (names and float64 bytes, sorted by
    name): the weights part of a force field's checksum."""
    digest = hashlib.blake2b(digest_size=16)
    for name, tensor in sorted(module.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().double().numpy().tobytes())
    return digest.hexdigest()


def check_forcefield(
    forcefield: ForceField,
    state: BatchState,
    *,
    displacement_A: float = 1e-4,
    n_probe_atoms: int = 4,
    atol_eV_per_A: float = 1e-4,
) -> list[str]:
    """Check a force field against the contract; returns a list of problems (empty = fine).

    Checks shapes, dtypes, finiteness, that batched evaluation equals one-system
    evaluation, and that forces equal −∂E/∂r by central finite differences on a few atoms.
    """
    problems: list[str] = []
    out = forcefield.forward(state, compute_stress=True)
    n_sys, n_at = state.n_systems, state.n_atoms
    expected = {"energy": (n_sys,), "forces": (n_at, 3), "stress": (n_sys, 3, 3)}
    for name, shape in expected.items():
        value = getattr(out, name)
        if value is None or tuple(value.shape) != shape:
            problems.append(f"{name}: expected shape {shape}, got {None if value is None else tuple(value.shape)}")
        elif not torch.isfinite(value).all():
            problems.append(f"{name}: contains NaN or inf")
    if problems:
        return problems
    for system in range(n_sys):
        sl = state.system_slice(system)
        single = BatchState(
            positions=state.positions[sl].clone(),
            velocities=state.velocities[sl].clone(),
            masses=state.masses[sl].clone(),
            atomic_numbers=state.atomic_numbers[sl].clone(),
            cell=state.cell[system : system + 1].clone(),
            system_idx=torch.zeros(sl.stop - sl.start, dtype=torch.int64, device=state.device),
        )
        one = forcefield.forward(single, compute_stress=True)
        if not torch.allclose(one.forces, out.forces[sl], atol=1e-6, rtol=1e-6):
            problems.append(f"system {system}: batched forces differ from single-system forces")
        if not torch.allclose(one.energy[0], out.energy[system], atol=1e-6, rtol=1e-9):
            problems.append(f"system {system}: batched energy differs from single-system energy")
    rng = np.random.default_rng(0)
    for atom in rng.choice(n_at, size=min(n_probe_atoms, n_at), replace=False).tolist():
        system = int(state.system_idx[atom])
        for axis in range(3):
            energies = []
            for sign in (1.0, -1.0):
                probe = state.clone()
                probe.positions[atom, axis] += sign * displacement_A
                energies.append(float(forcefield.forward(probe, compute_stress=False).energy[system]))
            numeric = -(energies[0] - energies[1]) / (2 * displacement_A)
            analytic = float(out.forces[atom, axis])
            if abs(numeric - analytic) > atol_eV_per_A + 1e-3 * abs(analytic):
                problems.append(f"atom {atom} axis {axis}: force {analytic:.6g} eV/Å but −dE/dx = {numeric:.6g} eV/Å")
    return problems
