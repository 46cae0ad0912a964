"""The Warp kernels that build and check the neighbour rows of
:mod:`~hts_mlff.engine.kernels.neighbor_matrix` (which launches them and documents the layout).

* :func:`build_kernels`: fractional coordinates, then all pairs by minimum image (rows come out
  sorted);
* :func:`binned_kernel`: a cell list for any cell shape (bins at least the list range wide, or one),
  periodic images within reach, columns beyond the range skipped, the row then insertion-sorted;
* :func:`stale_kernel`: per system, whether an atom moved more than half the skin, whether its
  positions are finite and how far they lie from the origin.

One thread per atom (or per system), no atomics: rows are bit-identical whichever pack a
replica runs in.
"""

import functools
from typing import Any

from hts_mlff.engine.kernels import warp


@functools.cache
def build_kernels(scalar: Any) -> tuple[Any, Any]:
    wp = warp()

    @wp.kernel(enable_backward=False, module="unique")
    def fractional(
        first: wp.int32,
        targets: wp.array(dtype=wp.int32),
        positions: wp.array2d(dtype=scalar),
        inverse: wp.array3d(dtype=scalar),
        system: wp.array(dtype=wp.int32),
        rebuild: wp.array(dtype=wp.int32),
        frac: wp.array2d(dtype=scalar),
    ):
        # f = x · cell⁻¹ (row vectors) of the atoms whose rows the minimum-image builder makes
        i = targets[wp.tid() + first]
        s = system[i]
        if rebuild[s] != 1:
            return
        x = positions[i, 0]
        y = positions[i, 1]
        z = positions[i, 2]
        frac[i, 0] = x * inverse[s, 0, 0] + y * inverse[s, 1, 0] + z * inverse[s, 2, 0]
        frac[i, 1] = x * inverse[s, 0, 1] + y * inverse[s, 1, 1] + z * inverse[s, 2, 1]
        frac[i, 2] = x * inverse[s, 0, 2] + y * inverse[s, 1, 2] + z * inverse[s, 2, 2]

    @wp.kernel(enable_backward=False, module="unique")
    def build_min_image(
        first: wp.int32,
        targets: wp.array(dtype=wp.int32),
        frac: wp.array2d(dtype=scalar),
        cells: wp.array3d(dtype=scalar),
        system: wp.array(dtype=wp.int32),
        start: wp.array(dtype=wp.int32),
        rebuild: wp.array(dtype=wp.int32),
        range2: scalar,
        half_rows: wp.int32,
        neighbors: wp.array2d(dtype=wp.int32),
        shift_code: wp.array2d(dtype=wp.int32),
        counts: wp.array(dtype=wp.int32),
    ):
        # one thread per atom (``targets``: the atoms of the systems flagged) of a system to
        # rebuild by minimum image (flag 1), neighbours in index order (rows come out sorted);
        # flag 2 clears the rows of a failed replica
        i = targets[wp.tid() + first]
        s = system[i]
        width = neighbors.shape[1]
        n_found = wp.int32(0)
        if rebuild[s] == 1:
            half = scalar(0.5)
            c00 = cells[s, 0, 0]
            c01 = cells[s, 0, 1]
            c02 = cells[s, 0, 2]
            c10 = cells[s, 1, 0]
            c11 = cells[s, 1, 1]
            c12 = cells[s, 1, 2]
            c20 = cells[s, 2, 0]
            c21 = cells[s, 2, 1]
            c22 = cells[s, 2, 2]
            f0 = frac[i, 0]
            f1 = frac[i, 1]
            f2 = frac[i, 2]
            lo = start[s]
            if half_rows != 0:
                lo = i + 1
            zero = scalar(0.0)
            if c01 == zero and c02 == zero and c10 == zero and c12 == zero and c20 == zero and c21 == zero:
                # an orthorhombic cell (most campaigns): three products instead of nine
                for j in range(lo, start[s + 1]):
                    s0 = -wp.floor(frac[j, 0] - f0 + half)
                    s1 = -wp.floor(frac[j, 1] - f1 + half)
                    s2 = -wp.floor(frac[j, 2] - f2 + half)
                    x = (frac[j, 0] - f0 + s0) * c00
                    y = (frac[j, 1] - f1 + s1) * c11
                    z = (frac[j, 2] - f2 + s2) * c22
                    if x * x + y * y + z * z < range2 and j != i:
                        if n_found < width:
                            neighbors[i, n_found] = wp.int32(j)
                            code = (int(s0) + 512) * 1048576 + (int(s1) + 512) * 1024 + (int(s2) + 512)
                            shift_code[i, n_found] = wp.int32(code)
                        n_found = n_found + wp.int32(1)
            else:
                for j in range(lo, start[s + 1]):
                    d0 = frac[j, 0] - f0
                    d1 = frac[j, 1] - f1
                    d2 = frac[j, 2] - f2
                    s0 = -wp.floor(d0 + half)
                    s1 = -wp.floor(d1 + half)
                    s2 = -wp.floor(d2 + half)
                    d0 = d0 + s0
                    d1 = d1 + s1
                    d2 = d2 + s2
                    x = d0 * c00 + d1 * c10 + d2 * c20
                    y = d0 * c01 + d1 * c11 + d2 * c21
                    z = d0 * c02 + d1 * c12 + d2 * c22
                    if x * x + y * y + z * z < range2 and j != i:
                        if n_found < width:
                            neighbors[i, n_found] = wp.int32(j)
                            code = (int(s0) + 512) * 1048576 + (int(s1) + 512) * 1024 + (int(s2) + 512)
                            shift_code[i, n_found] = wp.int32(code)
                        n_found = n_found + wp.int32(1)
        counts[i] = wp.int32(n_found)

    return fractional, build_min_image


@functools.cache
def binned_kernel(scalar: Any) -> Any:
    wp = warp()

    @wp.func
    def gap(d: wp.int32, t: scalar):
        # distance, in bins, from a point at t ∈ [0, 1) of its bin to bin offset d
        g = scalar(0.0)
        if d > 0:
            g = scalar(d) - t
        if d < 0:
            g = t - scalar(d + 1)
        return g

    @wp.kernel(enable_backward=False, module="unique")
    def build_binned(
        first: wp.int32,
        wrapped: wp.array2d(dtype=scalar),
        binned: wp.array2d(dtype=scalar),
        image: wp.array2d(dtype=wp.int32),
        bin_atoms: wp.array(dtype=wp.int32),
        bin_start: wp.array(dtype=wp.int32),
        n0: wp.int32,
        n1: wp.int32,
        n2: wp.int32,
        r0: wp.int32,
        r1: wp.int32,
        r2: wp.int32,
        bin_width: wp.array(dtype=scalar),
        orthogonal: wp.int32,
        cell: wp.array2d(dtype=scalar),
        offset: wp.int32,
        range_A: scalar,
        half_rows: wp.int32,
        neighbors: wp.array2d(dtype=wp.int32),
        shift_code: wp.array2d(dtype=wp.int32),
        counts: wp.array(dtype=wp.int32),
    ):
        # One thread per atom of one system (local index a, global index offset + a). The atom
        # visits bin offsets d in [-r, r] per direction (r·bin width ≥ the range along each face
        # normal), each a distinct (bin, periodic image), so every neighbour image within the
        # range is met once, the atom's own images included. Columns (d0, d1) farther than the
        # range from the atom along the face normals are skipped, each column's d2 span is cut
        # to the range, and the bins of a column that share one image are read as one run
        # (bins are stored by (c0, c1, c2), the atoms of a bin in index order).
        a = wp.tid() + first
        i = a + offset
        width = neighbors.shape[1]
        range2 = range_A * range_A
        n_found = wp.int32(0)
        f0 = wrapped[a, 0]
        f1 = wrapped[a, 1]
        f2 = wrapped[a, 2]
        h00 = cell[0, 0]
        h01 = cell[0, 1]
        h02 = cell[0, 2]
        h10 = cell[1, 0]
        h11 = cell[1, 1]
        h12 = cell[1, 2]
        h20 = cell[2, 0]
        h21 = cell[2, 1]
        h22 = cell[2, 2]
        u0 = f0 * scalar(n0)
        u1 = f1 * scalar(n1)
        u2 = f2 * scalar(n2)
        b0 = wp.min(wp.int32(u0), n0 - 1)
        b1 = wp.min(wp.int32(u1), n1 - 1)
        b2 = wp.min(wp.int32(u2), n2 - 1)
        t0 = u0 - scalar(b0)
        t1 = u1 - scalar(b1)
        t2 = u2 - scalar(b2)
        for d0 in range(-r0, r0 + 1):
            g0 = gap(d0, t0) * bin_width[0]
            if g0 <= range_A:
                c0 = b0 + d0
                w0 = c0 // n0
                c0 = c0 - w0 * n0
                for d1 in range(-r1, r1 + 1):
                    g1 = gap(d1, t1) * bin_width[1]
                    lateral2 = g1 * g1 + g0 * g0
                    if orthogonal == 0:
                        lateral2 = wp.max(g0, g1) * wp.max(g0, g1)
                    if lateral2 <= range2:
                        c1 = b1 + d1
                        w1 = c1 // n1
                        c1 = c1 - w1 * n1
                        # d2 span of this column: bins within the range left along normal 2
                        left = range_A / bin_width[2]
                        if orthogonal != 0:
                            left = wp.sqrt(range2 - lateral2) / bin_width[2]
                        hi = wp.min(r2, wp.int32(left + t2))  # ≥ 0: truncation is the floor
                        d2 = wp.max(-r2, -wp.int32(left + scalar(1.0) - t2))
                        column = (c0 * n1 + c1) * n2
                        while d2 <= hi:
                            c2 = b2 + d2
                            w2 = c2 // n2
                            c2 = c2 - w2 * n2
                            last = wp.min(hi, d2 + n2 - 1 - c2)  # the run: same image w2
                            # the atom's own image: in a full row any non-zero shift, in a
                            # half row one whose first non-zero component is positive
                            own = wp.int32(0)
                            if w0 != 0 or w1 != 0 or w2 != 0:
                                own = wp.int32(1)
                                if half_rows != 0:
                                    lead = w0
                                    if lead == 0:
                                        lead = w1
                                    if lead == 0:
                                        lead = w2
                                    if lead < 0:
                                        own = wp.int32(0)
                            e0s = scalar(w0) - f0
                            e1s = scalar(w1) - f1
                            e2s = scalar(w2) - f2
                            for q in range(bin_start[column + c2], bin_start[column + c2 + last - d2 + 1]):
                                bj = bin_atoms[q]
                                # a full row takes every other atom and the atom's own images, a
                                # half row the atoms after it and its own images of positive lead
                                keep = bj != a or own != 0
                                if half_rows != 0:
                                    keep = bj > a or (bj == a and own != 0)
                                if keep:
                                    # binned: the wrapped positions in bin order (read contiguously)
                                    e0 = binned[q, 0] + e0s
                                    e1 = binned[q, 1] + e1s
                                    e2 = binned[q, 2] + e2s
                                    x = e0 * h00 + e1 * h10 + e2 * h20
                                    y = e0 * h01 + e1 * h11 + e2 * h21
                                    z = e0 * h02 + e1 * h12 + e2 * h22
                                    if x * x + y * y + z * z < range2:
                                        if n_found < width:
                                            # x_j − x_i + s·cell with s = w − image_j + image_i
                                            s0 = w0 - image[bj, 0] + image[a, 0]
                                            s1 = w1 - image[bj, 1] + image[a, 1]
                                            s2 = w2 - image[bj, 2] + image[a, 2]
                                            neighbors[i, n_found] = bj + offset
                                            shift_code[i, n_found] = (
                                                (s0 + 512) * 1048576 + (s1 + 512) * 1024 + (s2 + 512)
                                            )
                                        n_found = n_found + wp.int32(1)
                            d2 = last + 1
        counts[i] = n_found
        if n_found <= width:  # rows sorted by (neighbour, shift): insertion sort of a few dozen
            for k in range(1, n_found):
                key_j = neighbors[i, k]
                key_c = shift_code[i, k]
                m = k - 1
                while m >= 0 and (neighbors[i, m] > key_j or (neighbors[i, m] == key_j and shift_code[i, m] > key_c)):
                    neighbors[i, m + 1] = neighbors[i, m]
                    shift_code[i, m + 1] = shift_code[i, m]
                    m = m - 1
                neighbors[i, m + 1] = key_j
                shift_code[i, m + 1] = key_c

    return build_binned


@functools.cache
def stale_kernel(scalar: Any) -> Any:
    wp = warp()

    @wp.kernel(enable_backward=False, module="unique")
    def stale_systems(
        first: wp.int32,
        positions: wp.array2d(dtype=scalar),
        reference: wp.array2d(dtype=scalar),
        deform: wp.array3d(dtype=scalar),
        strain: wp.array(dtype=scalar),
        start: wp.array(dtype=wp.int32),
        range_A: scalar,
        skin_A: scalar,
        stale: wp.array(dtype=wp.int32),
        finite: wp.array(dtype=wp.int32),
        extent: wp.array(dtype=scalar),
    ):
        # stale when 2·max|x − x_ref·F| + strain·range exceeds the skin (or is not finite); the
        # same pass gives the build what it checks of the positions (finite, largest |x_a|)
        s = wp.tid() + first
        largest = scalar(0.0)
        far = scalar(0.0)
        ok = wp.int32(1)
        moved_ok = wp.int32(1)
        for i in range(start[s], start[s + 1]):
            x0 = positions[i, 0]
            x1 = positions[i, 1]
            x2 = positions[i, 2]
            r0 = reference[i, 0]
            r1 = reference[i, 1]
            r2 = reference[i, 2]
            dx = x0 - (r0 * deform[s, 0, 0] + r1 * deform[s, 1, 0] + r2 * deform[s, 2, 0])
            dy = x1 - (r0 * deform[s, 0, 1] + r1 * deform[s, 1, 1] + r2 * deform[s, 2, 1])
            dz = x2 - (r0 * deform[s, 0, 2] + r1 * deform[s, 1, 2] + r2 * deform[s, 2, 2])
            moved2 = dx * dx + dy * dy + dz * dz
            if moved2 > largest:
                largest = moved2
            if not (moved2 == moved2):  # NaN: the replica blew up, or its atoms were moved by hand
                moved_ok = wp.int32(0)
            far = wp.max(far, wp.max(wp.abs(x0), wp.max(wp.abs(x1), wp.abs(x2))))
            if not (x0 * scalar(0.0) + x1 * scalar(0.0) + x2 * scalar(0.0) == scalar(0.0)):  # NaN or inf
                ok = wp.int32(0)
        budget = scalar(2.0) * wp.sqrt(largest) + strain[s] * range_A
        flag = wp.int32(0)
        if not (budget <= skin_A) or ok == 0 or moved_ok == 0:
            flag = wp.int32(1)
        stale[s] = flag
        finite[s] = ok
        extent[s] = far

    return stale_systems
