"""Pair functions of the compiled row kernels (:mod:`hts_mlff.engine.kernels.pair`).

Each is a ``warp.func`` of (r², p0, p1, p2, p3) returning vec2(V(r) in eV, f/r = −(dV/dr)/r in
eV/Å²), made once per float type; the four parameters are one species pair's entries of the
force field's table. The torch path of the same force field is the reference they are tested
against (``tests/engine/test_kernels.py``).
"""

import functools
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
