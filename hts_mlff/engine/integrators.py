r"""The primitives every ensemble's step is made of, over one batched :class:`MDState`.

* the half kick :math:`v \leftarrow v + \tfrac12 \Delta t\, F/m` and the drift :math:`x \leftarrow x + h v`;
* the force evaluation (neighbour list updated, then the force field with that list);
* the Langevin first half B–A–O–A of BAOAB (Leimkuhler & Matthews 2013), per-atom targets:
  O-step :math:`v \leftarrow c_1 v + \sqrt{(1-c_1^2) k_B T / m}\,\xi`, :math:`c_1 = e^{-\gamma\,\Delta t}`,
  then the change of each replica's total momentum is taken out (the centre of mass does not
  diffuse; 3N − 3 thermalised degrees of freedom, as the temperature assumes);
* the stochastic cell-rescaling barostat (Bernetti & Bussi, J. Chem. Phys. 153, 114107 (2020)),
  per-replica target pressure. With :math:`\epsilon = \ln V`,

  .. math::

     d\epsilon = -\frac{\beta_T}{\tau_p}\left(P_0 - P - \frac{k_B T}{V}\right) dt
                 + \sqrt{\frac{2 k_B T \beta_T}{V \tau_p}}\, dW ,

  isotropic: positions and cell scale by :math:`e^{d\epsilon/3}`, velocities by
  :math:`e^{-d\epsilon/3}`; along z alone (NP_zT): the same equation with P_zz, only the z
  length (the third column of the cell, positions and velocities along z) rescaled by
  :math:`e^{d\epsilon}` (ε = ln L_z + const), for solid–liquid coexistence along z.

Where the compiled kernels run (:mod:`hts_mlff.engine.kernels.integrator`) the kick and the
Langevin half are fused kernels with the same equations and the same random numbers; elsewhere
torch. Frozen (failed) replicas are masked: their accelerations and noise are zero and their
velocities were zeroed when they failed, so they do not move.
"""

from __future__ import annotations

import math

import torch

from hts_mlff.engine.forcefield import ForceField, ForceOutput
from hts_mlff.engine.kernels import kernels_enabled
from hts_mlff.engine.md_state import MDState
from hts_mlff.engine.neighbors import NeighborList
from hts_mlff.engine.rng import ReplicaRandom, Stream, normal_table
from hts_mlff.engine.state import BatchState, sum_per_system
from hts_mlff.units import (
    ACCEL_A_PER_FS2_PER_EV_PER_A_AMU,
    BAR_PER_EV_PER_A3,
    BOLTZMANN_EV_PER_K,
    EV_PER_AMU_A2_PER_FS2,
)


def kinetic_energy_eV(state: BatchState) -> torch.Tensor:
    """(n_systems,) kinetic energy in eV."""
    per_atom = 0.5 * state.masses * (state.velocities * state.velocities).sum(dim=1) * EV_PER_AMU_A2_PER_FS2
    return sum_per_system(per_atom, state.system_idx, state.n_systems)


def degrees_of_freedom(state: BatchState) -> torch.Tensor:
    """(n_systems,) 3N − 3 (total momentum removed)."""
    return (3 * state.atoms_per_system - 3).clamp(min=1).to(state.dtype)


def temperature_K(state: BatchState, kinetic_eV: torch.Tensor | None = None) -> torch.Tensor:
    """(n_systems,) instantaneous kinetic temperature in K."""
    ke = kinetic_energy_eV(state) if kinetic_eV is None else kinetic_eV
    return 2.0 * ke / (degrees_of_freedom(state) * BOLTZMANN_EV_PER_K)


def pressure_bar(state: BatchState, *, stress: torch.Tensor, kinetic_eV: torch.Tensor) -> torch.Tensor:
    """(n_systems,) instantaneous pressure P = (2 K / 3 − V tr σ / 3) / V, in bar."""
    volume = state.volume
    virial_part = -torch.diagonal(stress, dim1=1, dim2=2).sum(dim=1) / 3.0
    return (2.0 * kinetic_eV / (3.0 * volume) + virial_part) * BAR_PER_EV_PER_A3


def pressure_zz_bar(state: BatchState, *, stress: torch.Tensor) -> torch.Tensor:
    """(n_systems,) P_zz = (Σ m v_z² − V σ_zz)/V in bar (kinetic and virial parts along z)."""
    kinetic_zz = sum_per_system(state.masses * state.velocities[:, 2] ** 2, state.system_idx, state.n_systems)
    kinetic_zz = kinetic_zz * EV_PER_AMU_A2_PER_FS2
    return (kinetic_zz / state.volume - stress[:, 2, 2]) * BAR_PER_EV_PER_A3


class Propagator:
    """The primitives of one pack's steps (see the module doc), with the protocol's constants.

    Args:
        forcefield: the force field.
        neighbors: the Verlet list covering ``forcefield.cutoff_A`` (updated before every evaluation).
        random: per-replica random numbers.
        timestep_fs: integration step.
        friction_per_fs: Langevin friction γ.
        barostat_time_constant_fs: τ_p of the barostat.
        compressibility_per_bar: β_T used by the barostat (sets its response only).
    """

    def __init__(
        self,
        forcefield: ForceField,
        *,
        neighbors: NeighborList,
        random: ReplicaRandom,
        timestep_fs: float,
        friction_per_fs: float = 0.01,
        barostat_time_constant_fs: float = 2000.0,
        compressibility_per_bar: float = 5e-5,
    ) -> None:
        self.forcefield = forcefield
        self.neighbors = neighbors
        self.random = random
        self.timestep_fs = float(timestep_fs)
        self.friction_per_fs = float(friction_per_fs)
        self.barostat_time_constant_fs = float(barostat_time_constant_fs)
        self.compressibility_per_bar = float(compressibility_per_bar)
        self._element_system: torch.Tensor | None = None
        self._element_local: torch.Tensor | None = None
        self._fused = None  # kernels of the Langevin and velocity-Verlet updates, made on first use
        self._targets: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None

    # ------------------------------------------------------------------ forces
    def forces(self, md: MDState, *, stress: bool) -> ForceOutput:
        """Update the list, evaluate the force field at the current positions; kept as ``md.output``."""
        self.neighbors.update(md.system)
        md.output = self.forcefield.forward(md.system, neighbors=self.neighbors, compute_stress=stress)
        return md.output

    # ------------------------------------------------------------------ helpers
    def _atom_mask(self, md: MDState) -> torch.Tensor:
        return md.active[md.system.system_idx].to(md.system.dtype)[:, None]

    def _elements(self, state: BatchState) -> tuple[torch.Tensor, torch.Tensor]:
        if self._element_system is None or self._element_system.shape[0] != 3 * state.n_atoms:
            self._element_system = state.system_idx.repeat_interleave(3)
            self._element_local = (
                3 * state.local_atom_index()[:, None] + torch.arange(3, device=state.device)
            ).reshape(-1)
        return self._element_system, self._element_local

    def fused(self, state: BatchState):
        """The compiled updates (:mod:`hts_mlff.engine.kernels.integrator`) when they can run, else None."""
        if state.positions.requires_grad or not kernels_enabled(state.device):
            return None
        if self._fused is None or self._fused.system32.shape[0] != state.n_atoms:
            from hts_mlff.engine.kernels.integrator import FusedLangevin

            self._fused = FusedLangevin(
                state.system_idx, local_index=state.local_atom_index(), offsets=state.system_offsets()
            )
        return self._fused

    def atom_targets(self, state: BatchState, *, temperature_K: torch.Tensor, atom_temperature_K: torch.Tensor | None):
        """(n_atoms,) thermostat target of every atom in the state's dtype, contiguous, worked out
        again only when the target tensor is a new one (a refilled slot's, a ramp's, the
        two-phase preparation's): targets are replaced, never changed in place."""
        source = temperature_K if atom_temperature_K is None else atom_temperature_K
        cached = self._targets
        if cached is None or cached[0] is not source or cached[1] is not state.system_idx:
            target = temperature_K[state.system_idx] if atom_temperature_K is None else source
            self._targets = (source, state.system_idx, target.to(state.dtype).contiguous())
        return self._targets[2]

    # ------------------------------------------------------------------ primitives
    def half_kick(self, md: MDState) -> None:
        """v += ½Δt F/m (frozen replicas excluded)."""
        state, dt = md.system, self.timestep_fs
        fused = self.fused(state)
        if fused is not None:
            fused.half_kick(
                state.velocities, forces=md.output.forces, timestep_fs=dt, masses=state.masses, active=md.active
            )
            return
        accel = md.output.forces / state.masses[:, None] * ACCEL_A_PER_FS2_PER_EV_PER_A_AMU * self._atom_mask(md)
        state.velocities += 0.5 * dt * accel

    def drift(self, md: MDState, *, time_fs: float) -> None:
        """x += h v with h = ``time_fs``."""
        md.system.positions += time_fs * md.system.velocities

    def langevin_first_half(
        self, md: MDState, *, temperature_K: torch.Tensor, atom_temperature_K: torch.Tensor | None
    ) -> None:
        """B, A, O (momentum-conserving), A of BAOAB at pack step ``md.step``; targets per replica
        (n_systems,) K, or per atom (n_atoms,) K where given."""
        state, dt = md.system, self.timestep_fs
        fused = self.fused(state)
        if fused is not None:
            fused.first_half(
                state.positions,
                state.velocities,
                forces=md.output.forces,
                target_K=self.atom_targets(state, temperature_K=temperature_K, atom_temperature_K=atom_temperature_K),
                base_bits=self.random.stream_base_bits(Stream.LANGEVIN, md.step),
                table=normal_table(state.device, state.dtype),
                timestep_fs=dt,
                c1=math.exp(-self.friction_per_fs * dt),
                masses=state.masses,
                active=md.active,
            )
            return
        self.half_kick(md)
        self.drift(md, time_fs=0.5 * dt)
        self._langevin_o(md, temperature_K=temperature_K, atom_temperature_K=atom_temperature_K)
        self.drift(md, time_fs=0.5 * dt)

    def _langevin_o(self, md: MDState, *, temperature_K: torch.Tensor, atom_temperature_K: torch.Tensor | None) -> None:
        state = md.system
        c1 = math.exp(-self.friction_per_fs * self.timestep_fs)
        target = temperature_K[state.system_idx] if atom_temperature_K is None else atom_temperature_K
        kt_over_m = (BOLTZMANN_EV_PER_K * target / state.masses) * ACCEL_A_PER_FS2_PER_EV_PER_A_AMU
        sigma = torch.sqrt((1.0 - c1 * c1) * kt_over_m)[:, None] * self._atom_mask(md)
        es, el = self._elements(state)
        xi = self.random.normal(Stream.LANGEVIN, md.step, element_system=es, element_local=el, dtype=state.dtype)
        momentum_before = sum_per_system(state.velocities * state.masses[:, None], state.system_idx, state.n_systems)
        state.velocities.mul_(c1).add_(sigma * xi.view(-1, 3))
        # Momentum-conserving O-step (as ASE's fixcm, LAMMPS "zero yes"): the thermostat acts on the
        # 3N − 3 internal degrees of freedom only, so the centre of mass does not random-walk (it
        # would drift by ~Å over tens of ps in a 100-atom crystal and blur the lattice sites).
        momentum_after = sum_per_system(state.velocities * state.masses[:, None], state.system_idx, state.n_systems)
        mass = sum_per_system(state.masses, state.system_idx, state.n_systems)
        state.velocities.sub_(((momentum_after - momentum_before) / mass[:, None])[state.system_idx])

    def cell_rescale(self, md: MDState, *, temperature_K: torch.Tensor, axes: str) -> None:
        """One stochastic cell-rescaling move at pack step ``md.step``: ``axes`` "xyz" (isotropic,
        P) or "z" (only L_z, P_zz). Needs the stress of the current positions (``md.output``)."""
        state = md.system
        if md.output.stress is None:
            raise RuntimeError("the barostat needs the stress of the current positions")
        if axes == "z":
            p_now = pressure_zz_bar(state, stress=md.output.stress)
        else:
            p_now = pressure_bar(state, stress=md.output.stress, kinetic_eV=kinetic_energy_eV(state))
        volume = state.volume
        kt_bar_a3 = BOLTZMANN_EV_PER_K * temperature_K * BAR_PER_EV_PER_A3  # bar·Å³
        beta_over_tau = self.compressibility_per_bar / self.barostat_time_constant_fs
        drift = -beta_over_tau * (md.pressure_bar - p_now - kt_bar_a3 / volume) * self.timestep_fs
        noise_amp = torch.sqrt(2.0 * kt_bar_a3 * beta_over_tau * self.timestep_fs / volume)
        xi = self.random.normal_per_system(Stream.BAROSTAT, md.step, dtype=state.dtype)
        d_eps = drift + noise_amp * xi
        d_eps = torch.where(md.active, d_eps, torch.zeros_like(d_eps))
        d_eps = d_eps.clamp(-0.01, 0.01)  # at most 1 % volume change per step
        if axes == "z":  # ε = ln V = ln L_z + const: the same equation, z scaled alone
            scale = torch.exp(d_eps)
            state.positions[:, 2].mul_(scale[state.system_idx])
            state.velocities[:, 2].div_(scale[state.system_idx])
            state.cell = state.cell.clone()
            state.cell[:, :, 2] = state.cell[:, :, 2] * scale[:, None]
            return
        scale = torch.exp(d_eps / 3.0)
        state.positions.mul_(scale[state.system_idx][:, None])
        state.velocities.div_(scale[state.system_idx][:, None])
        state.cell = state.cell * scale[:, None, None]
