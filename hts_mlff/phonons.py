"""Phonons of any force field of the package at T = 0 (the public entry points).

>>> from hts_mlff import phonons
>>> H = phonons.hessian(forcefield, atoms, step_A=3.4e-4)        # (3N, 3N) eV/Å², batched
>>> phonons.symmetricity(H)                                       # 1 for a conservative field
>>> phonons.frequencies_THz(forcefield, atoms, [[0, 0, 0], [0.5, 0, 0.5]])  # (n_q, n_bands) THz

The implementation, equations and units: :mod:`hts_mlff.statics.phonons`; sweeps over force
fields × pressures: ``hts-mlff phonons CONFIG`` (:mod:`hts_mlff.statics.phonon_sweep`).
"""

from hts_mlff.statics.phonons import (
    default_step_A,
    density_of_states,
    dynamical_matrices,
    force_constants,
    frequencies_THz,
    hessian,
    hessian_autograd,
    mass_weighted,
    normal_modes,
    symmetricity,
)

__all__ = [
    "default_step_A",
    "density_of_states",
    "dynamical_matrices",
    "force_constants",
    "frequencies_THz",
    "hessian",
    "hessian_autograd",
    "mass_weighted",
    "normal_modes",
    "symmetricity",
]
