r"""Minimum-energy paths by the simplified string method (E, Ren & Vanden-Eijnden 2007).

The string is a chain of images φ_0 … φ_{M−1} between two states. Each iteration moves every
image along its force, φ_i ← φ_i + Δt F(φ_i) (all images evaluated together: one batched
force call), then redistributes the images at equal arc length along the piecewise-linear
string. At convergence the force perpendicular to the string vanishes and the string is the
minimum-energy path. The barrier comes from integrating the force along the path,

.. math:: E(s) − E(0) = −\int_0^s \mathbf F \cdot \hat{\mathbf t}\, \mathrm ds'

(cumulative Simpson rule over the equally spaced images),

so it works for force-only models (the direct GNN); for conservative force fields the direct
energy difference is a cross-check. Coordinates are flat vectors (n_images, n_dof): atoms
flatten to 3N, an analytic surface to 2.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

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


def tangents(images: torch.Tensor) -> torch.Tensor:
    """(M, n_dof) unit tangents by central differences (one-sided at the ends)."""
    t = torch.empty_like(images)
    t[1:-1] = images[2:] - images[:-2]
    t[0] = images[1] - images[0]
    t[-1] = images[-1] - images[-2]
    return t / torch.linalg.vector_norm(t, dim=1, keepdim=True).clamp_min(1e-300)


def _perpendicular(images: torch.Tensor, forces: torch.Tensor) -> torch.Tensor:
    t = tangents(images)
    return forces - (forces * t).sum(1, keepdim=True) * t


def integrate_forces(images: torch.Tensor, forces: torch.Tensor) -> torch.Tensor:
    """(M,) E − E(φ_0) along the string: −∫ F · t ds by cumulative Simpson over arc length."""
    from scipy.integrate import cumulative_simpson

    segments = torch.linalg.vector_norm(images[1:] - images[:-1], dim=1)
    s = torch.cat([segments.new_zeros(1), torch.cumsum(segments, 0)]).cpu().double().numpy()
    slope = -(forces * tangents(images)).sum(1).cpu().double().numpy()  # dE/ds
    if len(s) < 3:
        profile = [0.0] + [0.5 * (slope[0] + slope[1]) * (s[1] - s[0])] * (len(s) - 1)
    else:
        profile = cumulative_simpson(slope, x=s, initial=0.0)
    return torch.as_tensor(profile, dtype=images.dtype, device=images.device)


def string_method(
    force: Callable[[torch.Tensor], torch.Tensor],
    start: torch.Tensor,
    end: torch.Tensor,
    *,
    n_images: int = 16,
    step: float = 1e-3,
    max_step: float | None = None,
    tolerance: float = 1e-3,
    max_iterations: int = 5000,
    fixed_ends: bool = False,
    initial: torch.Tensor | None = None,
) -> StringResult:
    """Relax a string of images between ``start`` and ``end`` to the minimum-energy path.

    Args:
        force: maps (M, n_dof) coordinates to (M, n_dof) forces (one batched call per iteration).
        start, end: (n_dof,) end states (ideally minima: with ``fixed_ends`` False they relax too).
        n_images: M. step: Δt of the steepest-descent move (coordinate units per force unit).
        max_step: cap on any coordinate's move per iteration (stability when forces are large).
        tolerance: stop when max |F⊥| over the inner images falls below this.
        initial: (M, n_dof) starting string (default: the straight line).
    """
    if initial is not None:
        images = initial.clone()
    else:
        fraction = torch.linspace(0, 1, n_images, dtype=start.dtype, device=start.device)[:, None]
        images = start[None] + fraction * (end - start)[None]
    converged = False
    iteration = 0
    forces = force(images)
    perp = _perpendicular(images, forces)
    perpendicular = torch.linalg.vector_norm(perp, dim=1)
    while iteration < max_iterations:
        iteration += 1
        # Inner images move with the force across the string (the reparametrisation takes care
        # of motion along it); free end images relax with the full force.
        move = perp.clone()
        move[0], move[-1] = (0.0, 0.0) if fixed_ends else (forces[0], forces[-1])
        move = step * move
        if max_step is not None:
            move = move.clamp(-max_step, max_step)
        images = reparametrize(images + move)
        forces = force(images)
        perp = _perpendicular(images, forces)
        perpendicular = torch.linalg.vector_norm(perp, dim=1)
        inner = perpendicular[1:-1] if len(images) > 2 else perpendicular
        if float(inner.max()) < tolerance:
            converged = True
            break
    segments = torch.linalg.vector_norm(images[1:] - images[:-1], dim=1)
    return StringResult(
        images=images,
        forces=forces,
        arc_length=torch.cat([segments.new_zeros(1), torch.cumsum(segments, 0)]),
        energy_from_forces=integrate_forces(images, forces),
        perpendicular_force=perpendicular,
        iterations=iteration,
        converged=converged,
    )


def atomic_force_function(forcefield, template: BatchState) -> Callable[[torch.Tensor], torch.Tensor]:
    """Force function of a string of atomic images: (M, 3N) coordinates → (M, 3N) forces.

    ``template`` is a one-system state (species, masses, cell); the M images are evaluated as
    one batched pack of M copies of it.
    """
    n = template.n_atoms

    def force(images: torch.Tensor) -> torch.Tensor:
        m = images.shape[0]
        pack = BatchState(
            positions=images.reshape(m * n, 3).to(template.dtype),
            velocities=torch.zeros(m * n, 3, dtype=template.dtype, device=template.device),
            masses=template.masses.repeat(m),
            atomic_numbers=template.atomic_numbers.repeat(m),
            cell=template.cell.expand(m, 3, 3).clone(),
            system_idx=torch.arange(m, device=template.device).repeat_interleave(n),
        )
        return forcefield.forward(pack, compute_stress=False).forces.reshape(m, 3 * n).to(images.dtype)

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
