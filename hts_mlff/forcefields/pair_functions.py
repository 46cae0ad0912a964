"""Pair functions of the compiled row kernels (:mod:`hts_mlff.engine.kernels.pair`).

Each is a ``warp.func`` of (r², p0, p1, p2, p3) returning vec2(V(r) in eV, f/r = −(dV/dr)/r in
eV/Å²), made once per float type; the four parameters are one species pair's entries of the
force field's table. The torch path of the same force field is the reference they are tested
against (``tests/engine/test_kernels.py``).
"""

import functools
import math
from typing import Any

from hts_mlff.engine.kernels import warp


@functools.cache
def lennard_jones_function(scalar: Any) -> Any:
    r"""V = 4ε[(σ/r)¹² − (σ/r)⁶] − V_shift, f/r = 24ε[2(σ/r)¹² − (σ/r)⁶]/r²; parameters
    (4ε eV, σ² Å², V_shift eV, unused)."""
    wp = warp()
    vec2 = wp.types.vector(2, scalar)

    @wp.func
    def lennard_jones(r2: scalar, eps4: scalar, sigma2: scalar, shift: scalar, unused: scalar):
        inv_r2 = scalar(1.0) / r2
        s2 = sigma2 * inv_r2
        s6 = s2 * s2 * s2
        s12 = s6 * s6
        return vec2(eps4 * (s12 - s6) - shift, scalar(6.0) * eps4 * (scalar(2.0) * s12 - s6) * inv_r2)

    return lennard_jones


@functools.cache
def buckingham_dsf_function(scalar: Any, *, cutoff_A: float, alpha_per_A: float, shift: bool) -> Any:
    r"""Buckingham + damped-shifted-force Coulomb (:mod:`hts_mlff.forcefields.buckingham_dsf`);
    parameters (A eV, 1/ρ Å⁻¹, C eV·Å⁶, k_e q_i q_j eV·Å). r_c, α and the short-range shift are
    compiled in (one function per set)."""
    wp = warp()
    vec2 = wp.types.vector(2, scalar)
    rc, alpha = float(cutoff_A), float(alpha_per_A)
    erfc_c_over_rc = math.erfc(alpha * rc) / rc
    force_c = math.erfc(alpha * rc) / rc**2 + 2.0 / math.sqrt(math.pi) * alpha * math.exp(-((alpha * rc) ** 2)) / rc
    two_alpha_over_sqrt_pi = 2.0 * alpha / math.sqrt(math.pi)
    alpha2 = alpha * alpha
    short_shift = 1.0 if shift else 0.0
    inv_rc6 = 1.0 / rc**6

    @wp.func
    def buckingham_dsf(r2: scalar, a: scalar, inv_rho: scalar, c: scalar, qq: scalar):
        r = wp.sqrt(r2)
        inv_r = scalar(1.0) / r
        inv_r2 = inv_r * inv_r
        inv_r6 = inv_r2 * inv_r2 * inv_r2
        born = a * wp.exp(-r * inv_rho)
        cut = a * wp.exp(-scalar(rc) * inv_rho) - c * scalar(inv_rc6)
        e_short = born - c * inv_r6 - scalar(short_shift) * cut
        f_short = born * inv_rho - scalar(6.0) * c * inv_r6 * inv_r
        erfc_r = wp.erfc(scalar(alpha) * r)
        e_coul = qq * (erfc_r * inv_r - scalar(erfc_c_over_rc) + scalar(force_c) * (r - scalar(rc)))
        gauss = scalar(two_alpha_over_sqrt_pi) * wp.exp(-scalar(alpha2) * r2) * inv_r
        f_coul = qq * (erfc_r * inv_r2 + gauss - scalar(force_c))
        return vec2(e_short + e_coul, (f_short + f_coul) * inv_r)

    return buckingham_dsf
