"""Verlet neighbour list: pair sets, canonical order, rebuild criterion."""

from __future__ import annotations

import numpy as np
import torch
from ase.neighborlist import neighbor_list

from hts_mlff.engine.neighbors import PairList, system_pairs
from tests.conftest import argon, batch


def test_pairs_match_ase_for_unwrapped_positions():
    atoms = argon(a=5.3, repeat=2, rattle=0.1, seed=1)
    atoms.positions += np.array([13.0, -7.5, 22.0])  # far outside the cell
    i, j, shifts = system_pairs(atoms.positions, cell=np.array(atoms.cell), cutoff_A=6.0)
    d = atoms.positions[j] - atoms.positions[i] + shifts @ np.array(atoms.cell)
    r = np.linalg.norm(d, axis=1)
    ref = neighbor_list("d", atoms, 6.0)
    np.testing.assert_allclose(np.sort(r), np.sort(ref)[::2], atol=1e-10)
    assert (i <= j).all()


def test_rebuild_only_after_half_skin():
    state = batch([argon(repeat=3)])
    nl = PairList(8.5, skin_A=1.0)
    assert nl.update(state)
    state.positions[0, 0] += 0.4
    assert not nl.update(state)
    state.positions[0, 0] += 0.2
    assert nl.update(state)
    assert nl.n_builds == 2


def test_rebuild_after_cell_strain():
    state = batch([argon(repeat=3)])
    nl = PairList(8.5, skin_A=0.5)
    nl.update(state)
    # A uniform strain ε changes pair distances by at most ε·(cutoff + skin).
    state.positions *= 1.02
    state.cell *= 1.02
    assert not nl.needs_rebuild(state)  # 0.02 · 9 Å = 0.18 Å < skin
    state.positions *= 1.05
    state.cell *= 1.05
    assert nl.needs_rebuild(state)


def test_order_is_canonical_whenever_built():
    atoms = argon(repeat=3, rattle=0.1, seed=2)
    s1 = batch([atoms])
    s2 = batch([atoms])
    s2.positions += torch.tensor([0.3, -0.2, 0.1], dtype=torch.float64)  # a rigid shift
    a = PairList(8.5, skin_A=1.0)
    b = PairList(8.5, skin_A=1.0)
    a.build(s1)
    b.build(s2)
    assert torch.equal(a.pair_i, b.pair_i) and torch.equal(a.pair_j, b.pair_j)


def test_small_cell_minimum_image_path_handles_rotated_and_sheared_cells():
    """The batched minimum-image path (small cells) agrees with vesin for non-diagonal cells."""
    from hts_mlff.engine.neighbors import brute_force_pairs

    atoms = argon(repeat=3, rattle=0.15, seed=3)
    q, _ = np.linalg.qr(np.random.default_rng(1).normal(size=(3, 3)))
    shear = np.eye(3)
    shear[0, 1] = 0.08
    for transform in (q, shear):
        moved = atoms.copy()
        moved.set_cell(atoms.cell.array @ transform.T, scale_atoms=False)
        moved.positions = atoms.positions @ transform.T
        state = batch([moved])
        _, i, j, s = brute_force_pairs(state.positions[None], state.cell, cutoff_A=7.0)
        vectors = state.positions[j] - state.positions[i] + s.to(state.dtype) @ state.cell[0]
        i2, j2, s2 = system_pairs(moved.positions, cell=moved.cell.array, cutoff_A=7.0)
        assert len(i) == len(i2)
        np.testing.assert_allclose(
            np.sort(vectors.norm(dim=1).numpy()),
            np.sort(np.linalg.norm(moved.positions[j2] - moved.positions[i2] + s2 @ moved.cell.array, axis=1)),
            atol=1e-12,
        )
