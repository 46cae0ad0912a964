"""Pair potentials over neighbour rows: forces, energies, virials and the guard's numbers in one pass.

One thread per atom walks its row (sorted by neighbour index, see
:mod:`~hts_mlff.engine.kernels.neighbor_matrix`) and accumulates, in that fixed order and
without atomics,

* the force F_i = −Σ_j f(r_ij)/r_ij · d_ij with d_ij = r_j − r_i + s·cell, f/r = −(dV/dr)/r,
* half of every pair energy, e_i = ½ Σ_j V(r_ij),
* half of every pair virial, w_i = −½ Σ_j f/r · d_ij ⊗ d_ij (eV; σ = Σ_i w_i / V),
* the smallest squared distance of any pair in the row (the guard's fusion test);

a second kernel, one thread per system, sums its atoms in index order into the system's
energy, virial, closest pair and largest force. Each pair is computed twice (once from each
end): the price of a sum whose order never depends on where, or beside whom, a replica runs.

On a CPU the rows are *half* rows (each pair once, both ends written by the atom that owns
the pair): spans of threads then hold whole chunks of a system (see
:data:`~hts_mlff.engine.kernels.neighbor_matrix.CHUNK_ATOMS`), each chunk adding into its own
copy of the per-atom arrays, which the per-system kernel sums in chunk order.

A pair function is a ``warp.func`` ``(r2, p0, p1, p2, p3) -> vec2(energy eV, f_over_r eV/Å²)``
reading four per-type-pair parameters; it is called only for r² below the cutoff².
"""

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from hts_mlff.engine.kernels import as_warp, launch, scalar_type, state_tensor, warp, warp_device
from hts_mlff.engine.kernels.neighbor_matrix import ZERO_SHIFT_CODE, NeighborMatrix
from hts_mlff.engine.state import BatchState

N_PARAMETERS = 4


@functools.cache
def _pair_parameters(scalar: Any) -> Any:
    wp = warp()
    vec4 = wp.types.vector(4, scalar)

    @wp.func
    def pair_parameters(parameters: wp.array3d(dtype=scalar), a: wp.int32, b: wp.int32):
        """The four parameters of the species pair (a, b)."""
        return vec4(parameters[a, b, 0], parameters[a, b, 1], parameters[a, b, 2], parameters[a, b, 3])

    return pair_parameters


@dataclass
class RowSums:
    """What one pass over the rows gives.

    Attributes:
        forces: (n_atoms, 3) eV/Å.
        energy: (n_systems,) eV (pair energies only).
        virial: (n_systems, 3, 3) eV, −Σ_pairs f/r d ⊗ d (stress = virial / V).
        min_pair_distance_A: (n_systems,) closest pair in the rows (list range, skin included).
        max_force_eV_per_A: (n_systems,) largest |F_i|.
        atom_energy: (n_atoms,) eV, half of every pair energy of the atom (stress steps only,
            else None).
        atom_virial: (n_atoms, 3, 3) eV, half of every pair virial of the atom (stress steps
            only, else None). With ``atom_energy`` the partition the heat current needs.

    Every tensor here is the caller's own (none is a view of the rows' reused scratch): it
    keeps its values through later passes.
    """

    forces: torch.Tensor
    energy: torch.Tensor
    virial: torch.Tensor
    min_pair_distance_A: torch.Tensor
    max_force_eV_per_A: torch.Tensor
    atom_energy: torch.Tensor | None = None
    atom_virial: torch.Tensor | None = None


@functools.cache
def _pair_kernel(scalar: Any, pair_function: Callable, single_type: bool, half_rows: bool) -> Any:
    """The row kernel of ``pair_function``: one body, specialised when Warp generates it
    (``wp.static``) for one species or many, and for full rows (each atom writes its own force,
    half of its energy and virial) or half rows (each pair once, both ends written into the
    atom's chunk's copy of the arrays)."""
    wp = warp()
    zero_shift = wp.int32(ZERO_SHIFT_CODE)
    pair_parameters = _pair_parameters(scalar)
    # half rows: a copy of the per-atom arrays per chunk (a leading index)
    forces_type = wp.array3d(dtype=scalar) if half_rows else wp.array2d(dtype=scalar)
    energy_type = wp.array2d(dtype=scalar) if half_rows else wp.array(dtype=scalar)
    virial_type = wp.array3d(dtype=scalar) if half_rows else wp.array2d(dtype=scalar)

    @wp.func
    def add_half_virial(
        atom_virial: wp.array3d(dtype=scalar),
        copy: wp.int32,
        a: wp.int32,
        xx: scalar,
        xy: scalar,
        xz: scalar,
        yy: scalar,
        yz: scalar,
        zz: scalar,
    ):
        """Half of a virial (xx, xy, xz, yy, yz, zz) onto atom a's entry in copy ``copy``."""
        half = scalar(0.5)
        atom_virial[copy, a, 0] = atom_virial[copy, a, 0] + half * xx
        atom_virial[copy, a, 1] = atom_virial[copy, a, 1] + half * xy
        atom_virial[copy, a, 2] = atom_virial[copy, a, 2] + half * xz
        atom_virial[copy, a, 3] = atom_virial[copy, a, 3] + half * yy
        atom_virial[copy, a, 4] = atom_virial[copy, a, 4] + half * yz
        atom_virial[copy, a, 5] = atom_virial[copy, a, 5] + half * zz

    @wp.kernel(module="unique")
    def pair_rows(
        first: wp.int32,
        positions: wp.array2d(dtype=scalar),
        cells: wp.array3d(dtype=scalar),
        system: wp.array(dtype=wp.int32),
        chunk: wp.array(dtype=wp.int32),
        types: wp.array(dtype=wp.int32),
        neighbors: wp.array2d(dtype=wp.int32),
        shift_code: wp.array2d(dtype=wp.int32),
        counts: wp.array(dtype=wp.int32),
        active: wp.array(dtype=wp.int32),
        parameters: wp.array3d(dtype=scalar),
        cutoff2: scalar,
        with_virial: wp.int32,
        forces: forces_type,
        atom_energy: energy_type,
        atom_virial: virial_type,
        atom_min_r2: wp.array(dtype=scalar),
    ):
        # half rows: the atom's chunk k of its system owns copy k of the force, energy and
        # virial arrays, so chunks run side by side without writing to the same memory
        i = wp.tid() + first
        s = system[i]
        ck = wp.int32(0)
        if wp.static(half_rows):
            ck = chunk[i]
        ti = types[i]
        xi = positions[i, 0]
        yi = positions[i, 1]
        zi = positions[i, 2]
        zero = scalar(0.0)
        half = scalar(0.5)
        fx = zero
        fy = zero
        fz = zero
        e = zero
        wxx = zero
        wxy = zero
        wxz = zero
        wyy = zero
        wyz = zero
        wzz = zero
        r2_min = scalar(1.0e30)
        c00 = cells[s, 0, 0]
        c01 = cells[s, 0, 1]
        c02 = cells[s, 0, 2]
        c10 = cells[s, 1, 0]
        c11 = cells[s, 1, 1]
        c12 = cells[s, 1, 2]
        c20 = cells[s, 2, 0]
        c21 = cells[s, 2, 1]
        c22 = cells[s, 2, 2]
        n_entries = counts[i]
        if active[s] == 0:  # a frozen replica: no forces, nothing walked
            n_entries = wp.int32(0)
        # one species (LJ argon): the pair's parameters are read once, not per pair (~12 % faster)
        q = pair_parameters(parameters, ti, ti)
        for k in range(n_entries):
            j = neighbors[i, k]
            code = shift_code[i, k]
            dx = positions[j, 0] - xi
            dy = positions[j, 1] - yi
            dz = positions[j, 2] - zi
            if code != zero_shift:  # a pair across the cell's faces (most are inside: ~17 % faster)
                s0 = scalar((code >> 20) - 512)
                s1 = scalar(((code >> 10) & 1023) - 512)
                s2 = scalar((code & 1023) - 512)
                dx = dx + s0 * c00 + s1 * c10 + s2 * c20
                dy = dy + s0 * c01 + s1 * c11 + s2 * c21
                dz = dz + s0 * c02 + s1 * c12 + s2 * c22
            r2 = dx * dx + dy * dy + dz * dz
            r2_min = wp.min(r2_min, r2)
            if r2 < cutoff2:
                p = q
                if wp.static(not single_type):
                    p = pair_parameters(parameters, ti, types[j])
                ef = pair_function(r2, p[0], p[1], p[2], p[3])
                f_over_r = ef[1]
                fx = fx - f_over_r * dx
                fy = fy - f_over_r * dy
                fz = fz - f_over_r * dz
                if wp.static(half_rows):  # the other end's share, written by this atom
                    forces[ck, j, 0] = forces[ck, j, 0] + f_over_r * dx
                    forces[ck, j, 1] = forces[ck, j, 1] + f_over_r * dy
                    forces[ck, j, 2] = forces[ck, j, 2] + f_over_r * dz
                e = e + ef[0]
                if with_virial != 0:
                    if wp.static(half_rows):
                        # a stress step also keeps the symmetric per-atom partition (half of
                        # each pair's energy and virial on each end), which the heat current reads
                        pxx = -f_over_r * dx * dx
                        pxy = -f_over_r * dx * dy
                        pxz = -f_over_r * dx * dz
                        pyy = -f_over_r * dy * dy
                        pyz = -f_over_r * dy * dz
                        pzz = -f_over_r * dz * dz
                        wxx = wxx + pxx
                        wxy = wxy + pxy
                        wxz = wxz + pxz
                        wyy = wyy + pyy
                        wyz = wyz + pyz
                        wzz = wzz + pzz
                        atom_energy[ck, j] = atom_energy[ck, j] + half * ef[0]
                        add_half_virial(atom_virial, ck, j, pxx, pxy, pxz, pyy, pyz, pzz)
                    else:
                        wxx = wxx - f_over_r * dx * dx
                        wxy = wxy - f_over_r * dx * dy
                        wxz = wxz - f_over_r * dx * dz
                        wyy = wyy - f_over_r * dy * dy
                        wyz = wyz - f_over_r * dy * dz
                        wzz = wzz - f_over_r * dz * dz
        atom_min_r2[i] = r2_min
        if wp.static(half_rows):
            forces[ck, i, 0] = forces[ck, i, 0] + fx
            forces[ck, i, 1] = forces[ck, i, 1] + fy
            forces[ck, i, 2] = forces[ck, i, 2] + fz
            if with_virial != 0:  # the arrays start at zero: atoms before i may have added theirs
                atom_energy[ck, i] = atom_energy[ck, i] + half * e
                add_half_virial(atom_virial, ck, i, wxx, wxy, wxz, wyy, wyz, wzz)
            else:  # the row's whole energy, in copy 0 (the others are not cleared on such steps)
                atom_energy[0, i] = e
        else:
            forces[i, 0] = fx
            forces[i, 1] = fy
            forces[i, 2] = fz
            atom_energy[i] = half * e
            if with_virial != 0:
                atom_virial[i, 0] = half * wxx
                atom_virial[i, 1] = half * wxy
                atom_virial[i, 2] = half * wxz
                atom_virial[i, 3] = half * wyy
                atom_virial[i, 4] = half * wyz
                atom_virial[i, 5] = half * wzz

    return pair_rows


@functools.cache
def _system_kernel(scalar: Any) -> Any:
    wp = warp()

    @wp.kernel(module="unique")
    def system_sums(
        first: wp.int32,
        start: wp.array(dtype=wp.int32),
        n_chunks: wp.int32,
        chunk_forces: wp.array3d(dtype=scalar),
        chunk_energy: wp.array2d(dtype=scalar),
        chunk_virial: wp.array3d(dtype=scalar),
        atom_min_r2: wp.array(dtype=scalar),
        with_virial: wp.int32,
        clear: wp.int32,
        forces: wp.array2d(dtype=scalar),
        atom_energy: wp.array(dtype=scalar),
        atom_virial: wp.array2d(dtype=scalar),
        energy: wp.array(dtype=scalar),
        virial: wp.array2d(dtype=scalar),
        min_r2: wp.array(dtype=scalar),
        max_f2: wp.array(dtype=scalar),
    ):
        # per atom, the chunks' copies added in chunk order (one copy: the arrays may be the
        # outputs themselves) and, with ``clear``, set back to zero for the next pass (kept
        # copies need no clearing pass of their own); per system, its atoms in index order
        s = wp.tid() + first
        e = scalar(0.0)
        r2 = scalar(1.0e30)
        f2 = scalar(0.0)
        finite = wp.int32(1)
        for i in range(start[s], start[s + 1]):
            fx = chunk_forces[0, i, 0]
            fy = chunk_forces[0, i, 1]
            fz = chunk_forces[0, i, 2]
            ei = chunk_energy[0, i]
            for c in range(1, n_chunks):
                fx = fx + chunk_forces[c, i, 0]
                fy = fy + chunk_forces[c, i, 1]
                fz = fz + chunk_forces[c, i, 2]
                if with_virial != 0:
                    ei = ei + chunk_energy[c, i]
            if clear != 0:
                for c in range(n_chunks):
                    chunk_forces[c, i, 0] = scalar(0.0)
                    chunk_forces[c, i, 1] = scalar(0.0)
                    chunk_forces[c, i, 2] = scalar(0.0)
                    if with_virial != 0 or c == 0:
                        chunk_energy[c, i] = scalar(0.0)
            forces[i, 0] = fx
            forces[i, 1] = fy
            forces[i, 2] = fz
            atom_energy[i] = ei
            e = e + ei
            r2 = wp.min(r2, atom_min_r2[i])
            g = fx * fx + fy * fy + fz * fz
            if g > f2:
                f2 = g
            if not (g == g):
                finite = wp.int32(0)
        if finite == 0:  # a non-finite force reads as the largest
            f2 = scalar(1.0e300)
        energy[s] = e
        min_r2[s] = r2
        max_f2[s] = f2
        if with_virial != 0:
            for m in range(6):
                w = scalar(0.0)
                for i in range(start[s], start[s + 1]):
                    wi = chunk_virial[0, i, m]
                    for c in range(1, n_chunks):
                        wi = wi + chunk_virial[c, i, m]
                    if clear != 0:
                        for c in range(n_chunks):
                            chunk_virial[c, i, m] = scalar(0.0)
                    atom_virial[i, m] = wi
                    w = w + wi
                virial[s, m] = w

    return system_sums


_SYMMETRIC = (0, 1, 2, 1, 3, 4, 2, 4, 5)


def pair_rows(
    state: BatchState,
    rows: NeighborMatrix,
    *,
    pair_function: Callable,
    parameters: torch.Tensor,
    types: torch.Tensor,
    cutoff_A: float,
    compute_virial: bool,
) -> RowSums:
    """Run a pair function over the rows of every atom of ``state``.

    Args:
        state: the pack.
        rows: its neighbour rows, current for ``state.positions``.
        pair_function: a ``warp.func`` (r2, p0..p3) → vec2(energy eV, f_over_r eV/Å²).
        parameters: (n_types, n_types, 4) per-type-pair parameters in the state's dtype.
        types: (n_atoms,) int32 type index of every atom.
        cutoff_A: interaction cutoff (≤ the rows' range).
        compute_virial: also accumulate the virial.
    """
    wp = warp()
    scalar = scalar_type(state.dtype)
    dev, dtype, n, n_sys = state.device, state.dtype, state.n_atoms, state.n_systems
    positions = state_tensor(state.positions)
    cells = state.cell.detach().contiguous()
    serial = rows.half  # half rows: Warp's serial CPU launch writes both ends of each pair
    k = rows.n_chunks if serial else 1  # a chunked system: one copy of the arrays per chunk
    # per-atom scratch lives with the rows (its Warp views are reused from step to step)
    chunk_energy, chunk_virial, atom_min_r2 = rows.scratch(dtype, ((k, n), (k, n, 6), (n,)))
    if k == 1:  # the arrays are the outputs
        chunk_forces = (torch.zeros if serial else torch.empty)((1, n, 3), dtype=dtype, device=dev)
        forces, atom_energy, atom_virial = chunk_forces[0], chunk_energy[0], chunk_virial[0]
        if serial and compute_virial:  # both ends of a pair add their halves
            chunk_energy.zero_()
            chunk_virial.zero_()
    else:  # copies kept from pass to pass, set back to zero by the pass that sums them
        chunk_forces = rows.scratch(dtype, ((k, n, 3),), tag="chunk forces")[0]
        forces = torch.empty((n, 3), dtype=dtype, device=dev)
        atom_energy, atom_virial = rows.scratch(dtype, ((n,), (n, 6)), tag="atoms, summed")
    min_r2, max_f2 = rows.scratch(dtype, ((n_sys,), (n_sys,)), tag="systems")
    with_virial = wp.int32(1 if compute_virial else 0)
    active = rows.active32
    if active is None or active.shape[0] != n_sys:
        active = rows.scratch(torch.int32, ((n_sys,),), tag="all active", fill=1)[0]
    warp_dev = warp_device(dev)
    # full rows read no chunk index: the system index stands in (same shape and type)
    chunk = as_warp(rows.chunk32 if serial else rows.system32, wp.int32)
    per_atom = (
        [as_warp(chunk_forces, scalar), as_warp(chunk_energy, scalar), as_warp(chunk_virial, scalar)]
        if serial
        else [as_warp(forces, scalar), as_warp(atom_energy, scalar), as_warp(atom_virial, scalar)]
    )
    launch(
        _pair_kernel(scalar, pair_function, parameters.shape[0] == 1, serial),
        spans=rows.pair_spans,
        inputs=[
            as_warp(positions, scalar),
            as_warp(cells, scalar),
            as_warp(rows.system32, wp.int32),
            chunk,
            as_warp(types, wp.int32),
            as_warp(rows.neighbors, wp.int32),
            as_warp(rows.shift_code, wp.int32),
            as_warp(rows.counts, wp.int32),
            as_warp(active, wp.int32),
            as_warp(parameters, scalar),
            scalar(cutoff_A * cutoff_A),
            with_virial,
            *per_atom,
            as_warp(atom_min_r2, scalar),
        ],
        device=warp_dev,
    )
    energy = torch.empty(n_sys, dtype=dtype, device=dev)
    virial6 = torch.zeros((n_sys, 6), dtype=dtype, device=dev)
    launch(
        _system_kernel(scalar),
        spans=rows.system_spans,
        inputs=[
            as_warp(rows.start32, wp.int32),
            wp.int32(k),
            as_warp(chunk_forces, scalar),
            as_warp(chunk_energy, scalar),
            as_warp(chunk_virial, scalar),
            as_warp(atom_min_r2, scalar),
            with_virial,
            wp.int32(1 if k > 1 else 0),
            as_warp(forces, scalar),
            as_warp(atom_energy, scalar),
            as_warp(atom_virial, scalar),
            as_warp(energy, scalar),
            as_warp(virial6, scalar),
            as_warp(min_r2, scalar),
            as_warp(max_f2, scalar),
        ],
        device=warp_dev,
    )
    virial = virial6[:, list(_SYMMETRIC)].view(n_sys, 3, 3)
    return RowSums(
        forces=forces,
        energy=energy,
        virial=virial,
        min_pair_distance_A=torch.sqrt(min_r2),
        max_force_eV_per_A=torch.sqrt(max_f2),
        # copies: the per-atom arrays are scratch the next pass overwrites (the index copies too)
        atom_energy=atom_energy.clone() if compute_virial else None,
        atom_virial=atom_virial[:, list(_SYMMETRIC)].view(n, 3, 3) if compute_virial else None,
    )
