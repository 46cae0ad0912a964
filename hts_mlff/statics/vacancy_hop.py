"""Minimum-energy path of one vacancy hop in a perfect crystal (seeds §3.4).

The perfect supercell (e.g. from :func:`hts_mlff.statics.lattice.relaxed_fcc` at the target
pressure) loses the atom on ``vacancy_site``; in the end state the atom of a nearest-neighbour
site has moved into the hole, so the vacancy sits on that site. Both end states are relaxed by
FIRE at fixed cell (one pack of two), then the string between them is relaxed with all images
evaluated as one pack (:func:`hts_mlff.engine.string_method.string_method`, FIRE-driven,
per-atom tolerance). The barrier comes from integrating the force along the converged path, so
force-only models work; when the force field returns energies, the energy of every image is
kept too and ``barrier_energy_eV`` is the direct cross-check.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from ase import Atoms

from hts_mlff.engine.forcefield import ForceField
from hts_mlff.engine.minimize import fire_minimize
from hts_mlff.engine.state import state_from_atoms
from hts_mlff.engine.string_method import (
    StringRelaxation,
    StringResult,
    atomic_force_function,
    image_pack,
    peak_of_profile,
    string_method,
)


@dataclass(frozen=True)
class HopSettings:
    """How a hop is relaxed.

    Attributes:
        n_images: images including the ends (odd puts one on the symmetric saddle).
        fmax_eV_per_A: the string stops when the largest per-atom force perpendicular to it is
            below this.
        endpoint_fmax_eV_per_A: force tolerance of the relaxed end states (their energy is the
            reference of the barrier, so relax them tightly).
        max_iterations: of the string.
        initial_step: FIRE's first time step (Å per eV/Å).
        max_step_A: largest move of an atom per iteration.
    """

    n_images: int = 9
    fmax_eV_per_A: float = 3e-4
    endpoint_fmax_eV_per_A: float = 1e-4
    max_iterations: int = 3000
    initial_step: float = 0.02
    max_step_A: float = 0.05


@dataclass
class VacancyPath:
    """A converged vacancy hop.

    Attributes:
        string: the relaxed string (images (M, 3N) Å, forces (M, 3N) eV/Å, profile (M,) eV).
        energy_eV: (M,) E − E(image 0) from the force field's energies (NaN for force-only models).
        vacancy_site, target_site: the sites of the hop (indices of the perfect supercell).
        endpoint_fmax_eV_per_A: largest residual force of the relaxed end states.
    """

    string: StringResult
    energy_eV: np.ndarray
    vacancy_site: int
    target_site: int
    endpoint_fmax_eV_per_A: float

    @property
    def barrier_eV(self) -> float:
        """Top of the force-integrated profile (cubic Hermite between images)."""
        return peak_of_profile(self.string)

    @property
    def barrier_energy_eV(self) -> float:
        """Highest image energy above the start from the energies (NaN for force-only models)."""
        return float(np.max(self.energy_eV)) if np.isfinite(self.energy_eV).all() else float("nan")


def nearest_neighbor_site(atoms: Atoms, site: int) -> int:
    """Lowest-index site at the nearest-neighbour distance of ``site`` (minimum image)."""
    distances = atoms.get_distances(site, np.arange(len(atoms)), mic=True)
    distances[site] = np.inf
    nearest = distances.min()
    return int(np.flatnonzero(np.isclose(distances, nearest, rtol=1e-6))[0])


def hop_end_states(perfect: Atoms, *, vacancy_site: int, target_site: int) -> tuple[Atoms, Atoms]:
    """Unrelaxed start (vacancy on ``vacancy_site``) and end (vacancy on ``target_site``).

    The two share atom order; only the atom of ``target_site`` differs, moved by the
    minimum-image lattice vector onto ``vacancy_site``.
    """
    start = perfect.copy()
    hop = perfect.get_distance(target_site, vacancy_site, mic=True, vector=True)
    del start[vacancy_site]
    end = start.copy()
    moving = target_site - (1 if target_site > vacancy_site else 0)
    end.positions[moving] = start.positions[moving] + hop
    return start, end


def vacancy_hop_path(
    forcefield: ForceField,
    perfect: Atoms,
    *,
    vacancy_site: int = 0,
    target_site: int | None = None,
    settings: HopSettings = HopSettings(),
    device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.float64,
) -> VacancyPath:
    """Relax the end states and the string of the hop vacancy_site → target_site.

    Args:
        perfect: perfect supercell (its cell is kept fixed).
        target_site: default the nearest neighbour of ``vacancy_site``.
        settings: images, tolerances and steps (:class:`HopSettings`).
    """
    device = torch.device(device)
    if target_site is None:
        target_site = nearest_neighbor_site(perfect, vacancy_site)
    start, end = hop_end_states(perfect, vacancy_site=vacancy_site, target_site=target_site)
    ends = state_from_atoms([start, end], device=device, dtype=dtype)
    relaxed = fire_minimize(ends, forcefield, fmax_eV_per_A=settings.endpoint_fmax_eV_per_A, max_steps=5000)
    n = len(start)
    positions = ends.positions.detach().reshape(2, n, 3)
    # Translation is a symmetry: give the end state the start's centroid, so every image has the
    # same centroid and neither the tangents nor F⊥ carry a rigid-translation component.
    positions[1] -= positions[1].mean(0) - positions[0].mean(0)
    flat = positions.reshape(2, 3 * n)
    template = state_from_atoms([start], device=device, dtype=dtype)
    force = atomic_force_function(forcefield, template)
    relaxation = StringRelaxation(
        n_images=settings.n_images,
        step=settings.initial_step,
        max_step=settings.max_step_A,
        tolerance=settings.fmax_eV_per_A,
        max_iterations=settings.max_iterations,
        fixed_ends=True,
        optimizer="fire",
        point_dim=3,
        remove_translation=True,
    )
    string = string_method(force, flat[0], flat[1], settings=relaxation)
    energy = _image_energies(forcefield, template, string.images)
    return VacancyPath(
        string=string,
        energy_eV=energy - energy[0],
        vacancy_site=vacancy_site,
        target_site=target_site,
        endpoint_fmax_eV_per_A=float(relaxed.max_force_eV_per_A.max()),
    )


def _image_energies(forcefield: ForceField, template, images: torch.Tensor) -> np.ndarray:
    """(M,) energies of the images in eV (NaN where the force field has none)."""
    if not forcefield.provides_energy:
        return np.full(images.shape[0], np.nan)
    energy = forcefield.forward(image_pack(template, images), compute_stress=False).energy
    return energy.detach().cpu().double().numpy()
