"""FIRE (Bitzek et al., PRL 97, 170201 (2006)): the one implementation of the package.

:class:`FireSchedule` is FIRE's per-group bookkeeping (time step, mixing parameter, count of
downhill steps) and velocity mixing; :func:`fire_minimize` drives it over a batch (one group
per system: positions and cell), and the string method
(:func:`hts_mlff.engine.string_method.string_method`) over a whole string (one group).

In :func:`fire_minimize` each system keeps its own FIRE time step, mixing parameter and
counter, and stops moving once converged. With ``relax_cell`` the cell is a degree of freedom through the
deformation gradient D (cell = cell₀ Dᵀ, positions = x_ref Dᵀ) as in ASE's
``UnitCellFilter``; its generalised force is −V (σ + P I) D⁻ᵀ / N, so the minimum is the
enthalpy minimum at the target pressure P. Parameters follow ASE's FIRE defaults
(time in ASE units, unit masses).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from hts_mlff.engine.forcefield import ForceField
from hts_mlff.engine.neighbors import PairList, list_range_A
from hts_mlff.engine.state import BatchState, max_per_system, sum_per_system
from hts_mlff.units import EV_PER_A3_PER_BAR


class FireSchedule:
    """FIRE's state for ``n_groups`` independent groups of degrees of freedom.

    Per step, a group whose power P = F·v is positive mixes its velocity towards the force,
    v ← (1 − α) v + α |v| F / |F|, and after more than ``n_min`` such steps in a row grows its
    time step (× ``f_inc``, up to ``dt_max``) and shrinks α (× ``f_alpha``); a group going
    uphill (P ≤ 0) stops (v = 0), halves its time step (× ``f_dec``) and resets α. Then
    v ← v + Δt F and the move is Δt v. Defaults are ASE's; the keyword arguments are FIRE's
    published constants, one each, which is why there are more than eight.
    """

    def __init__(
        self,
        n_groups: int,
        *,
        dt_start: float,
        dt_max: float,
        dtype: torch.dtype = torch.float64,
        device: torch.device | str = "cpu",
        n_min: int = 5,
        f_inc: float = 1.1,
        f_dec: float = 0.5,
        alpha_start: float = 0.1,
        f_alpha: float = 0.99,
    ) -> None:
        self.dt = torch.full((n_groups,), dt_start, dtype=dtype, device=device)
        self.alpha = torch.full((n_groups,), alpha_start, dtype=dtype, device=device)
        self.n_downhill = torch.zeros(n_groups, dtype=torch.int64, device=device)
        self.dt_max, self.n_min, self.f_inc, self.f_dec = dt_max, n_min, f_inc, f_dec
        self.alpha_start, self.f_alpha = alpha_start, f_alpha

    def mixing(self, *, power: torch.Tensor, v_norm: torch.Tensor, f_norm: torch.Tensor):
        """(keep, mix), each (n_groups,): the new velocity is keep·v + mix·F (0 and 0 uphill).

        Advances the time step and α of every group; call once per step, then add Δt F
        (:attr:`dt`) to the mixed velocity.
        """
        uphill = power <= 0
        mix = self.alpha * v_norm / f_norm.clamp(min=1e-30)
        keep = 1 - self.alpha
        accelerate = (~uphill) & (self.n_downhill > self.n_min)
        self.dt = torch.where(accelerate, torch.clamp(self.dt * self.f_inc, max=self.dt_max), self.dt)
        self.alpha = torch.where(accelerate, self.alpha * self.f_alpha, self.alpha)
        self.n_downhill = torch.where(uphill, torch.zeros_like(self.n_downhill), self.n_downhill + 1)
        self.dt = torch.where(uphill, self.dt * self.f_dec, self.dt)
        self.alpha = torch.where(uphill, torch.full_like(self.alpha, self.alpha_start), self.alpha)
        zero = torch.zeros_like(keep)
        return torch.where(uphill, zero, keep), torch.where(uphill, zero, mix)


@dataclass
class MinimizeResult:
    """Outcome per system: converged (n_systems,) bool, max_force_eV_per_A (n_systems,), n_steps."""

    converged: torch.Tensor
    max_force_eV_per_A: torch.Tensor
    n_steps: int


def fire_minimize(
    state: BatchState,
    forcefield: ForceField,
    *,
    fmax_eV_per_A: float = 1e-3,
    max_steps: int = 2000,
    relax_cell: bool = False,
    pressure_bar: torch.Tensor | float = 0.0,
    skin_A: float = 0.5,
    max_step_A: float = 0.2,
) -> MinimizeResult:
    """Relax positions (and the cell) of every system in place."""
    dev, dt_ = state.device, state.dtype
    n_sys, sysidx = state.n_systems, state.system_idx
    pressure = torch.as_tensor(pressure_bar, dtype=dt_, device=dev).expand(n_sys) * EV_PER_A3_PER_BAR
    n_atoms_sys = state.atoms_per_system.to(dt_)
    nl = PairList(list_range_A(forcefield.cutoff_A), skin_A=skin_A)
    eye = torch.eye(3, dtype=dt_, device=dev).expand(n_sys, 3, 3)
    cell0 = state.cell.clone()
    deform = eye.clone()
    x_ref = state.positions.clone()

    fire = FireSchedule(n_sys, dt_start=0.1, dt_max=1.0, dtype=dt_, device=dev)
    v_atoms = torch.zeros_like(x_ref)
    v_cell = torch.zeros_like(deform)
    converged = torch.zeros(n_sys, dtype=torch.bool, device=dev)
    fmax_now = torch.zeros(n_sys, dtype=dt_, device=dev)

    def generalised_forces() -> tuple[torch.Tensor, torch.Tensor]:
        state.positions = torch.einsum("ai,aji->aj", x_ref, deform[sysidx])
        state.cell = torch.einsum("sij,skj->sik", cell0, deform)
        nl.update(state)
        out = forcefield.forward(state, neighbors=nl, compute_stress=relax_cell)
        f_atoms = torch.einsum("ai,aij->aj", out.forces, deform[sysidx])
        if not relax_cell:
            return f_atoms, torch.zeros_like(deform)
        virial = -state.volume[:, None, None] * (out.stress + pressure[:, None, None] * eye)
        f_cell = torch.linalg.solve(deform, virial.transpose(1, 2)).transpose(1, 2) / n_atoms_sys[:, None, None]
        return f_atoms, f_cell

    step = 0
    for step in range(max_steps + 1):
        f_atoms, f_cell = generalised_forces()
        fmax_now = max_per_system(torch.linalg.vector_norm(f_atoms, dim=1), sysidx, n_sys)
        if relax_cell:
            fmax_now = torch.maximum(fmax_now, f_cell.abs().amax(dim=(1, 2)))
        converged = fmax_now < fmax_eV_per_A
        if bool(converged.all()) or step == max_steps:
            break
        vf = sum_per_system((f_atoms * v_atoms).sum(1), sysidx, n_sys) + (f_cell * v_cell).sum((1, 2))
        vv = sum_per_system((v_atoms * v_atoms).sum(1), sysidx, n_sys) + (v_cell * v_cell).sum((1, 2))
        ff = sum_per_system((f_atoms * f_atoms).sum(1), sysidx, n_sys) + (f_cell * f_cell).sum((1, 2))
        keep, mix = fire.mixing(power=vf, v_norm=torch.sqrt(vv), f_norm=torch.sqrt(ff))
        dt = fire.dt
        v_atoms = keep[sysidx][:, None] * v_atoms + mix[sysidx][:, None] * f_atoms
        v_cell = keep[:, None, None] * v_cell + mix[:, None, None] * f_cell
        v_atoms = v_atoms + dt[sysidx][:, None] * f_atoms
        v_cell = v_cell + dt[:, None, None] * f_cell
        dr_atoms = dt[sysidx][:, None] * v_atoms
        dr_cell = dt[:, None, None] * v_cell
        norm = torch.sqrt(sum_per_system((dr_atoms * dr_atoms).sum(1), sysidx, n_sys) + (dr_cell * dr_cell).sum((1, 2)))
        limit = torch.clamp(max_step_A / norm.clamp(min=1e-30), max=1.0)
        limit = torch.where(converged, torch.zeros_like(limit), limit)
        x_ref = x_ref + limit[sysidx][:, None] * dr_atoms
        # The cell degree of freedom is N·D (ASE's cell_factor), so D moves by dr/N.
        deform = deform + (limit / n_atoms_sys)[:, None, None] * dr_cell
    return MinimizeResult(converged=converged, max_force_eV_per_A=fmax_now, n_steps=step)
