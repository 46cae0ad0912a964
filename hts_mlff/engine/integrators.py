r"""Integrators as small step functions over one batched state.

* velocity Verlet (NVE);
* Langevin in the BAOAB splitting (Leimkuhler & Matthews 2013), per-replica temperature:
  O-step :math:`v \leftarrow c_1 v + \sqrt{(1-c_1^2) k_B T / m}\,\xi`, :math:`c_1 = e^{-\gamma\,\Delta t}`,
  then the change of each replica's total momentum is taken out (the centre of mass does not
  diffuse; 3N − 3 thermalised degrees of freedom, as the temperature assumes);
* NP_zT (``barostat_axes="z"``): the same equation with P_zz, only the z length (the third
  column of the cell, positions and velocities along z) rescaled by :math:`e^{d\epsilon}`
  (ε = ln V = ln L_z + const); for solid–liquid coexistence along z, where the lateral lattice
  must stay the crystal's;
* NPT: BAOAB plus the isotropic stochastic cell-rescaling barostat (Bernetti & Bussi,
  J. Chem. Phys. 153, 114107 (2020)), per-replica target pressure. With
  :math:`\epsilon = \ln V`,

  .. math::

     d\epsilon = -\frac{\beta_T}{\tau_p}\left(P_0 - P - \frac{k_B T}{V}\right) dt
                 + \sqrt{\frac{2 k_B T \beta_T}{V \tau_p}}\, dW ,

  positions and cell scale by :math:`e^{d\epsilon/3}`, velocities by :math:`e^{-d\epsilon/3}`.

Frozen (failed) replicas are masked: their accelerations and noise are zero and their
velocities were zeroed when they failed, so they do not move.
"""

from __future__ import annotations

import math

import torch

from hts_mlff.engine.forcefield import ForceField, ForceOutput
from hts_mlff.engine.kernels import kernels_enabled
from hts_mlff.engine.neighbors import NeighborList
from hts_mlff.engine.rng import ReplicaRandom, Stream, normal_table
from hts_mlff.engine.state import BatchState, sum_per_system
from hts_mlff.units import (
    ACCEL_A_PER_FS2_PER_EV_PER_A_AMU,
    BAR_PER_EV_PER_A3,
    BOLTZMANN_EV_PER_K,
    EV_PER_AMU_A2_PER_FS2,
)

ENSEMBLES = ("nve", "nvt", "npt")


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


class Dynamics:
    """Advance a batched state by one step of NVE, NVT (Langevin) or NPT (Langevin + C-rescale).

    Args:
        forcefield: the force field.
        neighbor_list: Verlet list covering ``forcefield.cutoff_A``.
        random: per-replica random numbers.
        timestep_fs: integration step.
        temperature_K: (n_systems,) target temperatures (NVT/NPT).
        pressure_bar: (n_systems,) target pressures (NPT).
        friction_per_fs: Langevin friction γ.
        barostat_time_constant_fs: τ_p of the barostat.
        compressibility_per_bar: β_T used by the barostat (sets its response only).
        barostat_axes: "xyz" (isotropic) or "z" (only L_z follows P_zz; NP_zT).
    """

    def __init__(
        self,
        forcefield: ForceField,
        *,
        neighbor_list: NeighborList,
        random: ReplicaRandom,
        timestep_fs: float,
        temperature_K: torch.Tensor,
        pressure_bar: torch.Tensor,
        friction_per_fs: float = 0.01,
        barostat_time_constant_fs: float = 2000.0,
        compressibility_per_bar: float = 5e-5,
        barostat_axes: str = "xyz",
    ) -> None:
        """Nine arguments: the force field and its list, the random streams, and one per
        thermostat/barostat constant of the protocol (each a physical setting with a unit)."""
        self.forcefield = forcefield
        self.neighbor_list = neighbor_list
        self.random = random
        self.timestep_fs = float(timestep_fs)
        self.temperature_K = temperature_K
        self.pressure_bar = pressure_bar
        self.friction_per_fs = float(friction_per_fs)
        self.barostat_time_constant_fs = float(barostat_time_constant_fs)
        self.compressibility_per_bar = float(compressibility_per_bar)
        if barostat_axes not in ("xyz", "z"):
            raise ValueError(f"barostat_axes {barostat_axes!r}: xyz or z")
        self.barostat_axes = barostat_axes
        #: (n_atoms,) per-atom thermostat targets overriding ``temperature_K`` (two-phase preparation).
        self.atom_temperature_K: torch.Tensor | None = None
        self.output: ForceOutput | None = None
        self.active: torch.Tensor | None = None
        self._element_system: torch.Tensor | None = None
        self._element_local: torch.Tensor | None = None
        self._fused = None  # kernels of the Langevin and velocity-Verlet updates, made on first use
        self._targets: torch.Tensor | None = None
        self._targets_key: tuple | None = None

    # ------------------------------------------------------------------ helpers
    def set_active(self, active: torch.Tensor) -> None:
        """(n_systems,) bool: replicas still integrated. Frozen replicas cost nothing more in
        the compiled kernels: their rows are neither rebuilt nor walked."""
        self.active = active
        self.neighbor_list.set_active(active)

    def _atom_mask(self, state: BatchState) -> torch.Tensor:
        if self.active is None:
            return torch.ones(state.n_atoms, 1, dtype=state.dtype, device=state.device)
        return self.active[state.system_idx].to(state.dtype)[:, None]

    def _elements(self, state: BatchState) -> tuple[torch.Tensor, torch.Tensor]:
        if self._element_system is None or self._element_system.shape[0] != 3 * state.n_atoms:
            self._element_system = state.system_idx.repeat_interleave(3)
            self._element_local = (
                3 * state.local_atom_index()[:, None] + torch.arange(3, device=state.device)
            ).reshape(-1)
        return self._element_system, self._element_local

    def _fused_updates(self, state: BatchState):
        """The compiled updates (:mod:`hts_mlff.engine.kernels.integrator`) when they can run."""
        if state.positions.requires_grad or not kernels_enabled(state.device):
            return None
        if self._fused is None or self._fused.system32.shape[0] != state.n_atoms:
            from hts_mlff.engine.kernels.integrator import FusedLangevin

            self._fused = FusedLangevin(
                state.system_idx, local_index=state.local_atom_index(), offsets=state.system_offsets()
            )
        return self._fused

    def compute_forces(self, state: BatchState, *, compute_stress: bool) -> ForceOutput:
        self.neighbor_list.update(state)
        self.output = self.forcefield.forward(state, compute_stress=compute_stress)
        return self.output

    def _accel(self, state: BatchState) -> torch.Tensor:
        return self.output.forces / state.masses[:, None] * ACCEL_A_PER_FS2_PER_EV_PER_A_AMU * self._atom_mask(state)

    # ------------------------------------------------------------------ steps
    def step(self, state: BatchState, *, step: int, ensemble: str, compute_stress: bool) -> ForceOutput:
        """One step from ``step`` to ``step + 1``; forces must be current on entry."""
        if self.output is None or (ensemble == "npt" and self.output.stress is None):
            # the first NPT step after an NVT phase needs the stress of the current positions
            self.compute_forces(state, compute_stress=True)
        dt = self.timestep_fs
        if ensemble not in ENSEMBLES:
            raise ValueError(f"unknown ensemble {ensemble!r}; expected one of {ENSEMBLES}")
        fused = self._fused_updates(state)
        if fused is not None:
            return self._fused_step(state, fused, step=step, ensemble=ensemble, compute_stress=compute_stress)
        if ensemble == "nve":
            state.velocities += 0.5 * dt * self._accel(state)
            state.positions += dt * state.velocities
            self.compute_forces(state, compute_stress=compute_stress)
            state.velocities += 0.5 * dt * self._accel(state)
            return self.output
        state.velocities += 0.5 * dt * self._accel(state)
        state.positions += 0.5 * dt * state.velocities
        self._langevin_o(state, step=step)
        state.positions += 0.5 * dt * state.velocities
        if ensemble == "npt":
            self._barostat(state, step=step)
        self.compute_forces(state, compute_stress=compute_stress or ensemble == "npt")
        state.velocities += 0.5 * dt * self._accel(state)
        return self.output

    def _fused_step(self, state: BatchState, fused, *, step: int, ensemble: str, compute_stress: bool) -> ForceOutput:
        """The same step through the compiled updates (same equations, same random numbers)."""
        dt = self.timestep_fs
        common = dict(masses=state.masses, active=self.active)
        if ensemble == "nve":
            fused.half_kick(state.velocities, forces=self.output.forces, timestep_fs=dt, **common)
            state.positions += dt * state.velocities
        else:
            fused.first_half(
                state.positions,
                state.velocities,
                forces=self.output.forces,
                target_K=self._atom_targets(state),
                base_bits=self.random.stream_base_bits(Stream.LANGEVIN, step),
                table=normal_table(state.device, state.dtype),
                timestep_fs=dt,
                c1=math.exp(-self.friction_per_fs * dt),
                **common,
            )
            if ensemble == "npt":
                self._barostat(state, step=step)
        self.compute_forces(state, compute_stress=compute_stress or ensemble == "npt")
        fused.half_kick(state.velocities, forces=self.output.forces, timestep_fs=dt, **common)
        return self.output

    def _atom_targets(self, state: BatchState) -> torch.Tensor:
        """(n_atoms,) thermostat target of every atom in the state's dtype, worked out again only
        when the targets change (a refilled slot's, a ramp's) — so the kernels see one tensor."""
        source = self.temperature_K if self.atom_temperature_K is None else self.atom_temperature_K
        # the key holds the tensors themselves, so a new tensor cannot pass for a cached one
        key = (source, source._version, state.system_idx, state.dtype)
        cached = self._targets_key
        if (
            cached is None
            or cached[0] is not source
            or cached[1] != source._version
            or cached[2] is not state.system_idx
            or cached[3] != state.dtype
        ):
            target = self.temperature_K[state.system_idx] if self.atom_temperature_K is None else source
            self._targets = target.to(state.dtype).contiguous()
            self._targets_key = key
        return self._targets

    def _langevin_o(self, state: BatchState, *, step: int) -> None:
        c1 = math.exp(-self.friction_per_fs * self.timestep_fs)
        target = self.temperature_K[state.system_idx] if self.atom_temperature_K is None else self.atom_temperature_K
        kt_over_m = (BOLTZMANN_EV_PER_K * target / state.masses) * ACCEL_A_PER_FS2_PER_EV_PER_A_AMU
        sigma = torch.sqrt((1.0 - c1 * c1) * kt_over_m)[:, None] * self._atom_mask(state)
        es, el = self._elements(state)
        xi = self.random.normal(Stream.LANGEVIN, step, element_system=es, element_local=el, dtype=state.dtype)
        momentum_before = sum_per_system(state.velocities * state.masses[:, None], state.system_idx, state.n_systems)
        state.velocities.mul_(c1).add_(sigma * xi.view(-1, 3))
        # Momentum-conserving O-step (as ASE's fixcm, LAMMPS "zero yes"): the thermostat acts on the
        # 3N − 3 internal degrees of freedom only, so the centre of mass does not random-walk (it
        # would drift by ~Å over tens of ps in a 100-atom crystal and blur the lattice sites).
        momentum_after = sum_per_system(state.velocities * state.masses[:, None], state.system_idx, state.n_systems)
        mass = sum_per_system(state.masses, state.system_idx, state.n_systems)
        state.velocities.sub_(((momentum_after - momentum_before) / mass[:, None])[state.system_idx])

    def _barostat(self, state: BatchState, *, step: int) -> None:
        ke = kinetic_energy_eV(state)
        if self.barostat_axes == "z":
            p_now = pressure_zz_bar(state, stress=self.output.stress)
        else:
            p_now = pressure_bar(state, stress=self.output.stress, kinetic_eV=ke)
        volume = state.volume
        kt_bar_a3 = BOLTZMANN_EV_PER_K * self.temperature_K * BAR_PER_EV_PER_A3  # bar·Å³
        beta_over_tau = self.compressibility_per_bar / self.barostat_time_constant_fs
        drift = -beta_over_tau * (self.pressure_bar - p_now - kt_bar_a3 / volume) * self.timestep_fs
        noise_amp = torch.sqrt(2.0 * kt_bar_a3 * beta_over_tau * self.timestep_fs / volume)
        xi = self.random.normal_per_system(Stream.BAROSTAT, step, dtype=state.dtype)
        d_eps = drift + noise_amp * xi
        if self.active is not None:
            d_eps = torch.where(self.active, d_eps, torch.zeros_like(d_eps))
        d_eps = d_eps.clamp(-0.01, 0.01)  # at most 1 % volume change per step
        if self.barostat_axes == "z":  # ε = ln V = ln L_z + const: the same equation, z scaled alone
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
