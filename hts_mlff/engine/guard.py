"""Stability guard: detect replicas that exploded, and freeze them.

A replica fails when its energy or forces are not finite, the largest force exceeds a
bound, an atom moved more than a bound in one step, or two atoms came closer than a
minimum pair distance (fusion). A failed replica is restored to its last checked good
configuration with zero velocity and excluded from integration; the rest of the pack goes
on. The step and the reason are recorded.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

import torch

from hts_mlff.engine.forcefield import ForceOutput
from hts_mlff.engine.neighbors import NeighborList
from hts_mlff.engine.state import BatchState, max_per_system


class FailureReason(IntEnum):
    """Why a replica was frozen (stored as an integer code)."""

    NONE = 0
    NON_FINITE = 1
    FORCE_BOUND = 2
    DISPLACEMENT_BOUND = 3
    ATOMS_FUSED = 4


@dataclass
class GuardLimits:
    """Bounds beyond which a replica counts as failed."""

    max_force_eV_per_A: float = 10.0
    max_step_displacement_A: float = 0.5
    min_pair_distance_A: float = 1.0


class StabilityGuard:
    """Track failures of a pack; see the module docstring."""

    def __init__(self, state: BatchState, *, limits: GuardLimits) -> None:
        self.limits = limits
        n = state.n_systems
        self.active = torch.ones(n, dtype=torch.bool, device=state.device)
        self.failure_step = torch.full((n,), -1, dtype=torch.int64, device=state.device)
        self.failure_reason = torch.zeros(n, dtype=torch.int64, device=state.device)
        self._good_positions = state.positions.detach().clone()
        self._good_cell = state.cell.detach().clone()

    def check(
        self,
        state: BatchState,
        output: ForceOutput,
        *,
        step: int,
        timestep_fs: float,
        neighbors: NeighborList | None = None,
        replicas: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Check every active replica (of ``replicas``, (n_systems,) bool, when given: the others
        keep their state untouched); freeze new failures. Returns (n_systems,) new failures.
        ``neighbors``: the list of the evaluation (the closest pair is read from it when the force
        field's own pass did not report one; None: no fusion check)."""
        n, sysidx = state.n_systems, state.system_idx
        reason = torch.zeros(n, dtype=torch.int64, device=state.device)
        force_norm = torch.linalg.vector_norm(output.forces, dim=1)
        speed = torch.linalg.vector_norm(state.velocities, dim=1)
        finite_atoms = torch.isfinite(force_norm) & torch.isfinite(speed) & torch.isfinite(state.positions).all(1)
        finite = (max_per_system((~finite_atoms).to(state.dtype), sysidx, n) <= 0) & torch.isfinite(output.energy)
        if output.max_force_eV_per_A is not None:  # from the force kernel's own pass
            max_force = output.max_force_eV_per_A
        else:
            max_force = max_per_system(torch.nan_to_num(force_norm, nan=torch.inf), sysidx, n)
        max_step = max_per_system(torch.nan_to_num(speed, nan=torch.inf), sysidx, n) * timestep_fs
        reason = torch.where(
            max_step > self.limits.max_step_displacement_A, int(FailureReason.DISPLACEMENT_BOUND), reason
        )
        reason = torch.where(max_force > self.limits.max_force_eV_per_A, int(FailureReason.FORCE_BOUND), reason)
        if self.limits.min_pair_distance_A > 0 and neighbors is not None:
            closest = output.min_pair_distance_A
            if closest is None:
                closest = self._min_pair_distance(state, neighbors)
            reason = torch.where(closest < self.limits.min_pair_distance_A, int(FailureReason.ATOMS_FUSED), reason)
        reason = torch.where(finite, reason, int(FailureReason.NON_FINITE))
        checked = self.active if replicas is None else self.active & replicas
        new = (reason != FailureReason.NONE) & checked
        if bool(new.any()):
            self._freeze(state, new, reason=reason, step=step)
        checked = checked & ~new
        self._good_positions = torch.where(checked[sysidx][:, None], state.positions.detach(), self._good_positions)
        self._good_cell = torch.where(checked[:, None, None], state.cell.detach(), self._good_cell)
        return new

    def retire(self, replica: int) -> None:
        """Stop integrating replica ``replica`` without a failure (its task is finished)."""
        self.active = self.active.clone()  # a new mask: the kernels convert their flags per mask
        self.active[replica] = False

    def restart(self, replica: int, state: BatchState, *, atoms: slice) -> None:
        """Replica ``replica`` starts a new task from ``state``'s positions and cell."""
        self.active = self.active.clone()
        self.active[replica] = True
        self.failure_step[replica] = -1
        self.failure_reason[replica] = int(FailureReason.NONE)
        self._good_positions[atoms] = state.positions.detach()[atoms]
        self._good_cell[replica] = state.cell.detach()[replica]

    def _min_pair_distance(self, state: BatchState, nl: NeighborList) -> torch.Tensor:
        d = nl.pair_vectors(state)
        r = torch.linalg.vector_norm(d, dim=1)
        out = torch.full((state.n_systems,), torch.inf, dtype=state.dtype, device=state.device)
        return out.scatter_reduce_(0, nl.pair_system, torch.nan_to_num(r, nan=0.0), reduce="amin")

    def _freeze(self, state: BatchState, new: torch.Tensor, *, reason: torch.Tensor, step: int) -> None:
        self.failure_step = torch.where(new, torch.full_like(self.failure_step, step), self.failure_step)
        self.failure_reason = torch.where(new, reason, self.failure_reason)
        self.active = self.active & ~new
        atoms = new[state.system_idx][:, None]
        state.positions = torch.where(atoms, self._good_positions, state.positions)
        state.velocities = torch.where(atoms, torch.zeros_like(state.velocities), state.velocities)
        state.cell = torch.where(new[:, None, None], self._good_cell, state.cell)

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {
            "active": self.active.cpu().clone(),
            "failure_step": self.failure_step.cpu().clone(),
            "failure_reason": self.failure_reason.cpu().clone(),
            "good_positions": self._good_positions.cpu().clone(),
            "good_cell": self._good_cell.cpu().clone(),
        }

    def load_state_dict(self, data: dict[str, torch.Tensor], *, device: torch.device) -> None:
        self.active = data["active"].to(device)
        self.failure_step = data["failure_step"].to(device)
        self.failure_reason = data["failure_reason"].to(device)
        self._good_positions = data["good_positions"].to(device)
        self._good_cell = data["good_cell"].to(device)
