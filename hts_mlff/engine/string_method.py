r"""Minimum-energy paths by the simplified string method (E, Ren & Vanden-Eijnden 2007).

The string is a chain of images φ_0 … φ_{M−1} between two states. Each iteration moves every
image along its force, φ_i ← φ_i + Δt F(φ_i) (all images evaluated together: one batched
force call), then redistributes the images at equal arc length along the piecewise-linear
string. At convergence the force perpendicular to the string vanishes and the string is the
minimum-energy path. The barrier comes from integrating the force along the path,

.. math:: E(φ_k) − E(φ_0) = −\int_{φ_0}^{φ_k} \mathbf F \cdot \mathrm d\boldsymbol φ

evaluated as the line integral along the chords between images (Simpson's rule with one extra
batched force call at the chord midpoints), so it works for force-only models (the direct GNN);
for conservative force fields the direct energy difference is a cross-check. Coordinates are
flat vectors (n_images, n_dof): atoms flatten to 3N, an analytic surface to 2.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import torch

from hts_mlff.engine.minimize import FireSchedule
from hts_mlff.engine.neighbors import PairList, list_range_A
from hts_mlff.engine.state import BatchState


@dataclass
class StringResult:
    """Converged string and the profile along it.

    Attributes:
        images: (M, n_dof) coordinates. forces: (M, n_dof) forces at the images.
        arc_length: (M,) cumulative length along the string (coordinate units).
        energy_from_forces: (M,) E − E(φ_0) by force integration.
        perpendicular_force: (M,) |F⊥| per image. iterations: iterations run. converged: bool.
    """

    images: torch.Tensor
    forces: torch.Tensor
    arc_length: torch.Tensor
    energy_from_forces: torch.Tensor
    perpendicular_force: torch.Tensor
    iterations: int
    converged: bool

    @property
    def barrier(self) -> float:
        """Highest point of the force-integrated profile above the first image."""
        return float(self.energy_from_forces.max())


def reparametrize(images: torch.Tensor) -> torch.Tensor:
    """Images redistributed at equal arc length along the piecewise-linear string."""
    segments = torch.linalg.vector_norm(images[1:] - images[:-1], dim=1)
    s = torch.cat([segments.new_zeros(1), torch.cumsum(segments, 0)])
    if float(s[-1]) == 0.0:
        return images.clone()
    targets = torch.linspace(0.0, float(s[-1]), len(images), dtype=images.dtype, device=images.device)
    k = torch.searchsorted(s, targets, right=True).clamp(1, len(images) - 1) - 1
    w = ((targets - s[k]) / (s[k + 1] - s[k]).clamp_min(1e-300))[:, None]
    out = images[k] + w * (images[k + 1] - images[k])
    out[0], out[-1] = images[0], images[-1]
    return out


def tangents(images: torch.Tensor, energies: torch.Tensor | None = None) -> torch.Tensor:
    """(M, n_dof) unit tangents (one-sided at the ends).

    Without ``energies``: central differences. With (M,) ``energies``: the upwind tangent of
    Henkelman & Jónsson (J. Chem. Phys. 113, 9978 (2000)) — towards the higher neighbour, mixed
    at extrema — which keeps the tangent from kinking where the path curves sharply.
    """
    t = torch.empty_like(images)
    forward = images[2:] - images[1:-1]
    backward = images[1:-1] - images[:-2]
    if energies is None:
        t[1:-1] = forward + backward
    else:
        e_prev, e_here, e_next = energies[:-2], energies[1:-1], energies[2:]
        up, down = e_next - e_here, e_prev - e_here
        big = torch.maximum(up.abs(), down.abs())[:, None]
        small = torch.minimum(up.abs(), down.abs())[:, None]
        mixed = torch.where((up > down)[:, None], big * forward + small * backward, small * forward + big * backward)
        rising = ((up > 0) & (down < 0))[:, None]
        falling = ((up < 0) & (down > 0))[:, None]
        t[1:-1] = torch.where(rising, forward, torch.where(falling, backward, mixed))
    t[0] = images[1] - images[0]
    t[-1] = images[-1] - images[-2]
    return t / torch.linalg.vector_norm(t, dim=1, keepdim=True).clamp_min(1e-300)


def _perpendicular(images: torch.Tensor, forces: torch.Tensor) -> torch.Tensor:
    """F − (F·t)t with upwind tangents from the trapezoid line-integral energies."""
    t = tangents(images, integrate_forces(images, forces))
    return forces - (forces * t).sum(1, keepdim=True) * t


def integrate_forces(
    images: torch.Tensor, forces: torch.Tensor, *, midpoint_forces: torch.Tensor | None = None
) -> torch.Tensor:
    """(M,) E − E(φ_0) by the line integral −∫ F · dφ along the piecewise-linear string.

    Each chord Δφ_j = φ_{j+1} − φ_j contributes −∫₀¹ F(φ_j + u Δφ_j) · Δφ_j du: by Simpson's rule
    when ``midpoint_forces`` ((M−1, n_dof), forces at the chord midpoints) are given, else by the
    trapezoid rule. For a conservative field the line integral along any path is the energy
    difference, so the profile at the images does not depend on the string being converged,
    only on the quadrature (error O(h⁵) per chord with midpoints).
    """
    chords = images[1:] - images[:-1]
    ends_left = -(forces[:-1] * chords).sum(1)
    ends_right = -(forces[1:] * chords).sum(1)
    if midpoint_forces is None:
        work = 0.5 * (ends_left + ends_right)
    else:
        work = (ends_left + 4.0 * -(midpoint_forces * chords).sum(1) + ends_right) / 6.0
    return torch.cat([work.new_zeros(1), torch.cumsum(work, 0)])


def _point_norms(vectors: torch.Tensor, point_dim: int) -> torch.Tensor:
    """(M,) per-image size of a force: the norm of the whole vector, or with ``point_dim`` = 3
    the largest per-atom norm (the usual atomistic convergence measure)."""
    if point_dim <= 0:
        return torch.linalg.vector_norm(vectors, dim=1)
    per_point = vectors.reshape(vectors.shape[0], -1, point_dim)
    return torch.linalg.vector_norm(per_point, dim=2).amax(dim=1)


def _without_translation(vectors: torch.Tensor, point_dim: int) -> torch.Tensor:
    """Subtract each image's mean point displacement (the rigid translation)."""
    per_point = vectors.reshape(vectors.shape[0], -1, point_dim)
    return (per_point - per_point.mean(dim=1, keepdim=True)).reshape(vectors.shape)


def _cap(move: torch.Tensor, max_step: float | None, point_dim: int) -> torch.Tensor:
    """Scale each image's move so no point (atom, or coordinate) moves further than ``max_step``."""
    if max_step is None:
        return move
    largest = _point_norms(move, point_dim) if point_dim > 0 else move.abs().amax(dim=1)
    return move * (max_step / largest.clamp_min(1e-300)).clamp(max=1.0)[:, None]


@dataclass(frozen=True)
class StringRelaxation:
    """How a string is relaxed.

    Attributes:
        n_images: M, including the end states.
        step: Δt of the steepest-descent move (coordinate units per force unit); with
            ``optimizer="fire"`` the initial FIRE time step (it grows to 10 × step).
        max_step: cap on any point's move per iteration (stability when forces are large).
        tolerance: stop when max |F⊥| over the inner images falls below this.
        max_iterations: give up (``converged`` False) after this many.
        fixed_ends: keep the end images where they are (else they relax with the full force).
        optimizer: ``steepest``: φ ← φ + Δt F⊥ (the method as published; slow on stiff atomic
            systems, where Δt is set by the stiffest bond). ``fire``: the same move direction
            driven by FIRE (:class:`hts_mlff.engine.minimize.FireSchedule`, one group: the whole
            string), velocities kept perpendicular to the string across each
            reparametrisation — the fixed points are the same, it converges in a few hundred
            iterations on atomic systems.
        point_dim: 3 for atoms (n_dof = 3N): tolerances and step caps act per atom; 0: on the
            whole vector (analytic surfaces).
        remove_translation: periodic atomic systems (needs ``point_dim``): take the rigid
            translation out of every move. F⊥ = F − (F·t)t has a net component wherever the
            tangent moves the centroid, and without this the images drift along that zero mode
            and lengthen the string at no cost in energy.
    """

    n_images: int = 16
    step: float = 1e-3
    max_step: float | None = None
    tolerance: float = 1e-3
    max_iterations: int = 5000
    fixed_ends: bool = False
    optimizer: Literal["steepest", "fire"] = "steepest"
    point_dim: int = 0
    remove_translation: bool = False


def string_method(
    force: Callable[[torch.Tensor], torch.Tensor],
    start: torch.Tensor,
    end: torch.Tensor,
    *,
    settings: StringRelaxation = StringRelaxation(),
    initial: torch.Tensor | None = None,
) -> StringResult:
    """Relax a string of images between ``start`` and ``end`` to the minimum-energy path.

    Args:
        force: maps (M, n_dof) coordinates to (M, n_dof) forces (one batched call per iteration).
        start, end: (n_dof,) end states (ideally minima: unless ``settings.fixed_ends`` they relax too).
        settings: see :class:`StringRelaxation`.
        initial: (M, n_dof) starting string (default: the straight line).
    """
    cfg = settings
    if initial is not None:
        images = initial.clone()
    else:
        fraction = torch.linspace(0, 1, cfg.n_images, dtype=start.dtype, device=start.device)[:, None]
        images = start[None] + fraction * (end - start)[None]
    converged = False
    iteration = 0
    forces = force(images)
    perp = _perpendicular(images, forces)
    perpendicular = _point_norms(perp, cfg.point_dim)
    velocity = torch.zeros_like(images)
    fire = FireSchedule(1, dt_start=cfg.step, dt_max=10.0 * cfg.step, dtype=images.dtype, device=images.device)

    def direction() -> torch.Tensor:
        # Inner images move across the string (the reparametrisation takes care of motion
        # along it); free end images relax with the full force.
        move = perp.clone()
        move[0], move[-1] = (0.0, 0.0) if cfg.fixed_ends else (forces[0], forces[-1])
        return move

    while iteration < cfg.max_iterations:
        iteration += 1
        drive = direction()
        if cfg.optimizer == "steepest":
            move = cfg.step * drive
        else:
            keep, mix = fire.mixing(
                power=(drive * velocity).sum().reshape(1),
                v_norm=torch.linalg.vector_norm(velocity).reshape(1),
                f_norm=torch.linalg.vector_norm(drive).reshape(1),
            )
            velocity = keep * velocity + mix * drive + fire.dt * drive
            move = fire.dt * velocity
        if cfg.remove_translation:
            move = _without_translation(move, cfg.point_dim)
            velocity = _without_translation(velocity, cfg.point_dim)
        move = _cap(move, cfg.max_step, cfg.point_dim)
        images = reparametrize(images + move)
        forces = force(images)
        perp = _perpendicular(images, forces)
        perpendicular = _point_norms(perp, cfg.point_dim)
        if cfg.optimizer == "fire":
            t = tangents(images, integrate_forces(images, forces))
            velocity = velocity - (velocity * t).sum(1, keepdim=True) * t
            if cfg.fixed_ends:
                velocity[0], velocity[-1] = 0.0, 0.0
        inner = perpendicular[1:-1] if len(images) > 2 else perpendicular
        if float(inner.max()) < cfg.tolerance:
            converged = True
            break
    segments = torch.linalg.vector_norm(images[1:] - images[:-1], dim=1)
    midpoint_forces = force(0.5 * (images[1:] + images[:-1]))
    return StringResult(
        images=images,
        forces=forces,
        arc_length=torch.cat([segments.new_zeros(1), torch.cumsum(segments, 0)]),
        energy_from_forces=integrate_forces(images, forces, midpoint_forces=midpoint_forces),
        perpendicular_force=perpendicular,
        iterations=iteration,
        converged=converged,
    )


def image_pack(template: BatchState, images: torch.Tensor) -> BatchState:
    """M copies of the one-system ``template`` at the (M, 3N) ``images`` coordinates, as one pack."""
    m, n = images.shape[0], template.n_atoms
    return BatchState(
        positions=images.reshape(m * n, 3).to(template.dtype),
        velocities=torch.zeros(m * n, 3, dtype=template.dtype, device=template.device),
        masses=template.masses.repeat(m),
        atomic_numbers=template.atomic_numbers.repeat(m),
        cell=template.cell.expand(m, 3, 3).clone(),
        system_idx=torch.arange(m, device=template.device).repeat_interleave(n),
    )


def atomic_force_function(
    forcefield, template: BatchState, *, skin_A: float = 0.5
) -> Callable[[torch.Tensor], torch.Tensor]:
    """Force function of a string of atomic images: (M, 3N) coordinates → (M, 3N) forces.

    ``template`` is a one-system state (species, masses, cell); the M images are evaluated as
    one batched pack of M copies of it. One Verlet list (cutoff + ``skin_A``) serves every call
    until an atom has moved more than skin/2.
    """
    n = template.n_atoms
    neighbor_list = PairList(list_range_A(forcefield.cutoff_A), skin_A=skin_A)

    def force(images: torch.Tensor) -> torch.Tensor:
        pack = image_pack(template, images)
        neighbor_list.update(pack)
        out = forcefield.forward(pack, neighbors=neighbor_list, compute_stress=False)
        return out.forces.reshape(images.shape[0], 3 * n).to(images.dtype)

    return force


def peak_of_profile(result: StringResult, *, points_per_segment: int = 50) -> float:
    """Barrier from a cubic Hermite interpolation of E(s) (values and slopes −F·t at the images):
    the top of the path between images, not just the highest image."""
    s = result.arc_length
    e = result.energy_from_forces
    slope = -(result.forces * tangents(result.images)).sum(1)
    best = float(e.max())
    u = torch.linspace(0, 1, points_per_segment, dtype=s.dtype, device=s.device)
    h00, h10, h01, h11 = 2 * u**3 - 3 * u**2 + 1, u**3 - 2 * u**2 + u, -2 * u**3 + 3 * u**2, u**3 - u**2
    for j in range(len(s) - 1):
        h = s[j + 1] - s[j]
        curve = h00 * e[j] + h10 * h * slope[j] + h01 * e[j + 1] + h11 * h * slope[j + 1]
        best = max(best, float(curve.max()))
    return best
