"""Fused Langevin (BAOAB) updates: three launches per step instead of some forty torch calls.

The same splitting as :meth:`hts_mlff.engine.integrators.Propagator.langevin_first_half` (see
:mod:`hts_mlff.engine.integrators` for the equations), with the same counter-based random
numbers (:mod:`hts_mlff.engine.rng`: the integer hash and the quantile table are reproduced
exactly, so a kernel draws the numbers the torch path draws):

1. per atom: B (v += ½Δt F/m), A (x += ½Δt v), O (v ← c₁v + σξ), keeping m·Δv of the O-step;
2. per system, in atom order: the O-step's change of total momentum → Δv per system;
3. per atom: v −= Δv of its system (the thermostat does not move the centre of mass), A.

After the force evaluation, :func:`half_kick` is the last B. Frozen replicas (``active`` 0)
get no force and no noise. One thread per atom or per system; no atomics.
"""

import functools
from typing import Any

import torch

from hts_mlff.engine.kernels import as_warp, kernel_threads, launch, scalar_type, spans, warp, warp_device
from hts_mlff.engine.kernels.tuning import MIN_LIGHT_SPAN, MIN_THERMOSTAT_SPAN
from hts_mlff.units import ACCEL_A_PER_FS2_PER_EV_PER_A_AMU, BOLTZMANN_EV_PER_K


@functools.cache
def _kernels(scalar: Any) -> tuple[Any, Any, Any, Any]:
    wp = warp()

    @wp.func
    def mix32(x: wp.uint32):
        x = x ^ (x >> wp.uint32(16))
        x = x * wp.uint32(0x7FEB352D)
        x = x ^ (x >> wp.uint32(15))
        x = x * (
            (wp.uint32(0x846C) << wp.uint32(16)) | wp.uint32(0xA68B)
        )  # 0x846CA68B: above int32, which a literal is
        return x ^ (x >> wp.uint32(16))

    @wp.func
    def gaussian(base: wp.uint32, element: wp.uint32, table: wp.array(dtype=scalar)):
        h = mix32(base + element)
        h = mix32(h ^ base)
        index = wp.int32(h >> wp.uint32(16))
        frac = scalar(wp.int32(h & wp.uint32(65535))) * scalar(1.0 / 65536.0)
        lower = table[index]
        return lower + frac * (table[index + 1] - lower)

    @wp.kernel(enable_backward=False, module="unique")
    def kick_drift_thermostat(
        first: wp.int32,
        positions: wp.array2d(dtype=scalar),
        velocities: wp.array2d(dtype=scalar),
        forces: wp.array2d(dtype=scalar),
        masses: wp.array(dtype=scalar),
        system: wp.array(dtype=wp.int32),
        local: wp.array(dtype=wp.int32),
        active: wp.array(dtype=wp.int32),
        target_K: wp.array(dtype=scalar),
        base: wp.array(dtype=wp.uint32),
        table: wp.array(dtype=scalar),
        timestep_fs: scalar,
        c1: scalar,
        noise_factor: scalar,
        accel_factor: scalar,
        momentum_change: wp.array2d(dtype=scalar),
    ):
        i = wp.tid() + first
        s = system[i]
        half_dt = scalar(0.5) * timestep_fs
        on = scalar(active[s])
        m = masses[i]
        a = accel_factor * on / m
        sigma = wp.sqrt(noise_factor * target_K[i] / m) * on
        element = wp.uint32(3 * local[i])
        for c in range(3):
            v = velocities[i, c] + half_dt * a * forces[i, c]
            positions[i, c] = positions[i, c] + half_dt * v
            xi = gaussian(base[s], element + wp.uint32(c), table)
            v_new = c1 * v + sigma * xi
            velocities[i, c] = v_new
            momentum_change[i, c] = m * (v_new - v)

    @wp.kernel(enable_backward=False, module="unique")
    def momentum_per_system(
        first: wp.int32,
        start: wp.array(dtype=wp.int32),
        masses: wp.array(dtype=scalar),
        momentum_change: wp.array2d(dtype=scalar),
        velocity_change: wp.array2d(dtype=scalar),
    ):
        s = wp.tid() + first
        mass = scalar(0.0)
        px = scalar(0.0)
        py = scalar(0.0)
        pz = scalar(0.0)
        for i in range(start[s], start[s + 1]):
            mass = mass + masses[i]
            px = px + momentum_change[i, 0]
            py = py + momentum_change[i, 1]
            pz = pz + momentum_change[i, 2]
        velocity_change[s, 0] = px / mass
        velocity_change[s, 1] = py / mass
        velocity_change[s, 2] = pz / mass

    @wp.kernel(enable_backward=False, module="unique")
    def recentre_drift(
        first: wp.int32,
        positions: wp.array2d(dtype=scalar),
        velocities: wp.array2d(dtype=scalar),
        system: wp.array(dtype=wp.int32),
        velocity_change: wp.array2d(dtype=scalar),
        timestep_fs: scalar,
    ):
        i = wp.tid() + first
        s = system[i]
        half_dt = scalar(0.5) * timestep_fs
        for c in range(3):
            v = velocities[i, c] - velocity_change[s, c]
            velocities[i, c] = v
            positions[i, c] = positions[i, c] + half_dt * v

    @wp.kernel(enable_backward=False, module="unique")
    def kick(
        first: wp.int32,
        velocities: wp.array2d(dtype=scalar),
        forces: wp.array2d(dtype=scalar),
        masses: wp.array(dtype=scalar),
        system: wp.array(dtype=wp.int32),
        active: wp.array(dtype=wp.int32),
        timestep_fs: scalar,
        accel_factor: scalar,
    ):
        i = wp.tid() + first
        a = accel_factor * scalar(active[system[i]]) / masses[i]
        half_dt = scalar(0.5) * timestep_fs
        for c in range(3):
            velocities[i, c] = velocities[i, c] + half_dt * a * forces[i, c]

    return kick_drift_thermostat, momentum_per_system, recentre_drift, kick


class FusedLangevin:
    """The BAOAB steps of one pack as kernels; index arrays are prepared once.

    Args:
        system_idx: (n_atoms,) int64; local_index: (n_atoms,) int64 index inside the system;
        offsets: (n_systems + 1,) int64 first atom of every system.
    """

    def __init__(self, system_idx: torch.Tensor, *, local_index: torch.Tensor, offsets: torch.Tensor) -> None:
        self.system32 = system_idx.to(torch.int32).contiguous()
        self.local32 = local_index.to(torch.int32).contiguous()
        self.start32 = offsets.to(torch.int32).contiguous()
        self.n_systems = int(offsets.shape[0]) - 1
        self._active_source: torch.Tensor | None = None
        self._active_flags: torch.Tensor | None = None
        self._active_view: Any = None
        self._momentum_change: torch.Tensor | None = None
        self._velocity_change: torch.Tensor | None = None
        threads = kernel_threads() if system_idx.device.type == "cpu" else 1
        self.atom_spans = spans(offsets.tolist(), threads, whole_systems=False, min_size=MIN_LIGHT_SPAN)
        # the thermostat step draws three Gaussians per atom: heavy enough to split earlier
        self.thermostat_spans = spans(offsets.tolist(), threads, whole_systems=False, min_size=MIN_THERMOSTAT_SPAN)
        atoms_per_system = max(1, int(offsets[-1]) // max(self.n_systems, 1))
        self.system_spans = spans(
            list(range(self.n_systems + 1)),
            threads,
            whole_systems=False,
            min_size=max(1, MIN_LIGHT_SPAN // atoms_per_system),
        )

    def _active32(self, active: torch.Tensor | None, device: torch.device) -> Any:
        """Warp view of the (n_systems,) int32 activity flags, converted once per new mask."""
        if self._active_source is not active or self._active_view is None:
            if active is None:
                flags = torch.ones(self.n_systems, dtype=torch.int32, device=device)
            else:
                flags = active.to(torch.int32).contiguous()
            self._active_source, self._active_flags = active, flags
            self._active_view = as_warp(flags, warp().int32)
        return self._active_view

    def _buffers(self, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self._momentum_change is None or self._momentum_change.dtype != like.dtype:
            self._momentum_change = torch.empty_like(like)
            self._velocity_change = torch.empty((self.n_systems, 3), dtype=like.dtype, device=like.device)
        return self._momentum_change, self._velocity_change

    def first_half(
        self,
        positions: torch.Tensor,
        velocities: torch.Tensor,
        *,
        forces: torch.Tensor,
        masses: torch.Tensor,
        active: torch.Tensor | None,
        target_K: torch.Tensor,
        base_bits: torch.Tensor,
        table: torch.Tensor,
        timestep_fs: float,
        c1: float,
    ) -> None:
        """B, A, O (momentum-conserving), A in place. ``target_K`` (n_atoms,) K, contiguous, kept
        by the caller from step to step (its Warp view is reused); ``base_bits``
        (n_systems,) int32 holding the 32 bits of the random stream's per-replica hash of this
        step (:meth:`~hts_mlff.engine.rng.ReplicaRandom.stream_base_bits`); ``table`` the
        quantile table (:mod:`hts_mlff.engine.rng`)."""
        wp = warp()
        scalar = scalar_type(positions.dtype)
        kick_drift_thermostat, momentum_per_system, recentre_drift, _ = _kernels(scalar)
        dev = warp_device(positions.device)
        momentum_change, velocity_change = self._buffers(positions)
        pos_w, vel_w = as_warp(positions, scalar), as_warp(velocities, scalar)
        masses_w, system_w = as_warp(masses, scalar), as_warp(self.system32, wp.int32)
        change_w = as_warp(momentum_change, scalar)
        noise = (1.0 - c1 * c1) * BOLTZMANN_EV_PER_K * ACCEL_A_PER_FS2_PER_EV_PER_A_AMU
        launch(
            kick_drift_thermostat,
            spans=self.thermostat_spans,
            inputs=[
                pos_w,
                vel_w,
                as_warp(forces.contiguous(), scalar),
                masses_w,
                system_w,
                as_warp(self.local32, wp.int32),
                self._active32(active, positions.device),
                as_warp(target_K, scalar),
                as_warp(base_bits, wp.uint32),
                as_warp(table, scalar),
                scalar(timestep_fs),
                scalar(c1),
                scalar(noise),
                scalar(ACCEL_A_PER_FS2_PER_EV_PER_A_AMU),
                change_w,
            ],
            device=dev,
        )
        velocity_w = as_warp(velocity_change, scalar)
        launch(
            momentum_per_system,
            spans=self.system_spans,
            inputs=[as_warp(self.start32, wp.int32), masses_w, change_w, velocity_w],
            device=dev,
        )
        launch(
            recentre_drift,
            spans=self.atom_spans,
            inputs=[pos_w, vel_w, system_w, velocity_w, scalar(timestep_fs)],
            device=dev,
        )

    def half_kick(
        self,
        velocities: torch.Tensor,
        *,
        forces: torch.Tensor,
        masses: torch.Tensor,
        active: torch.Tensor | None,
        timestep_fs: float,
    ) -> None:
        """v += ½Δt F/m in place (frozen replicas excluded)."""
        wp = warp()
        scalar = scalar_type(velocities.dtype)
        kick = _kernels(scalar)[3]
        launch(
            kick,
            spans=self.atom_spans,
            inputs=[
                as_warp(velocities, scalar),
                as_warp(forces.contiguous(), scalar),
                as_warp(masses, scalar),
                as_warp(self.system32, wp.int32),
                self._active32(active, velocities.device),
                scalar(timestep_fs),
                scalar(ACCEL_A_PER_FS2_PER_EV_PER_A_AMU),
            ],
            device=warp_device(velocities.device),
        )
