"""g(r), S(q), Wright factor, JSD and RDF MAE on cases with known answers."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from hts_mlff.analysis.structure import (
    compare_structure,
    jensen_shannon,
    jensen_shannon_shape,
    rdf,
    rdf_mae,
    structure_factor,
    wright_factor,
)
from tests.conftest import LIQUID_LATTICE_A, argon


def frames_dataset(frames: list[list[np.ndarray]], cell: np.ndarray, numbers: np.ndarray, index=None) -> xr.Dataset:
    """A campaign-like dataset: (traj, position_time_fs, atom, xyz) positions, cells, species."""
    positions = np.array(frames, dtype=float)
    n_traj, n_snap = positions.shape[:2]
    ds = xr.Dataset(
        {
            "positions": (("traj", "position_time_fs", "atom", "xyz"), positions),
            "cells": (
                ("traj", "position_time_fs", "cell_vector", "xyz"),
                np.broadcast_to(cell, (n_traj, n_snap, 3, 3)),
            ),
            "atomic_numbers": (("traj", "atom"), np.broadcast_to(numbers, (n_traj, len(numbers)))),
        },
        coords={"position_time_fs": np.arange(n_snap) * 100.0},
    )
    if index is not None:
        ds = ds.assign_coords(traj=index)
    return ds


def test_ideal_gas_gives_one_and_structure_factor_one():
    rng = np.random.default_rng(0)
    cell = np.eye(3) * 20.0
    ds = frames_dataset([[rng.uniform(0, 20, size=(400, 3)) for _ in range(20)]], cell, np.full(400, 18))
    g = rdf(ds, r_max_A=8.0, n_bins=16).isel(traj=0)
    np.testing.assert_allclose(g.values[4:], 1.0, atol=0.04)
    s = structure_factor(xr.ones_like(g), number_density_per_A3=0.05, q_per_A=np.linspace(0.5, 5, 10))
    np.testing.assert_allclose(s.values, 1.0)


def test_fcc_first_shell_holds_twelve_neighbours():
    atoms = argon(rattle=0.05, seed=1)
    ds = frames_dataset([[atoms.positions]], atoms.cell.array, atoms.numbers)
    g = rdf(ds, r_max_A=5.0, n_bins=100).isel(traj=0)
    rho = len(atoms) / atoms.get_volume()
    r, dr = g["r_A"].values, 0.05
    first = r < 0.5 * (LIQUID_LATTICE_A / np.sqrt(2) + LIQUID_LATTICE_A)  # between 1st and 2nd shells
    coordination = np.sum(4 * np.pi * rho * r[first] ** 2 * g.values[first] * dr)
    assert coordination == pytest.approx(12.0, rel=0.02)
    assert r[np.argmax(g.values)] == pytest.approx(LIQUID_LATTICE_A / np.sqrt(2), abs=0.1)


def test_partial_rdfs_sum_to_the_total_with_concentration_weights():
    atoms = argon(rattle=0.2, seed=2)
    numbers = atoms.numbers.copy()
    numbers[::4] = 36  # one Kr in four
    ds = frames_dataset([[atoms.positions]], atoms.cell.array, numbers)
    kw = {"r_max_A": 6.0, "n_bins": 30}
    total = rdf(ds, **kw).isel(traj=0).values
    n = len(numbers)
    parts = {}
    for a, b in ((18, 18), (18, 36), (36, 36)):
        parts[(a, b)] = rdf(ds, pair=(a, b), **kw).isel(traj=0).values
    n_ar, n_kr = (numbers == 18).sum(), (numbers == 36).sum()
    combined = (
        n_ar * (n_ar - 1) * parts[(18, 18)] + 2 * n_ar * n_kr * parts[(18, 36)] + n_kr * (n_kr - 1) * parts[(36, 36)]
    ) / (n * (n - 1))
    np.testing.assert_allclose(combined, total, rtol=1e-12, atol=1e-12)


def test_wright_factor_jsd_and_mae_by_hand():
    r = {"r_A": [1.0, 2.0, 3.0]}
    g = xr.DataArray([0.0, 1.0, 2.0], dims="r_A", coords=r)
    ref = xr.DataArray([0.0, 2.0, 2.0], dims="r_A", coords=r)
    assert float(wright_factor(g, ref)) == pytest.approx(np.sqrt(1 / 8))  # Wright's R_χ, square-rooted
    # eq. 3 on g itself: ĝ = (0, 1.5, 2); KL(g‖ĝ) = ln(2/3), KL(ref‖ĝ) = 2 ln(4/3)
    assert float(jensen_shannon(g, ref)) == pytest.approx(0.5 * (np.log(2 / 3) + 2 * np.log(4 / 3)))
    kl_p = np.log(0.8) / 3 + 2 / 3 * np.log(8 / 7)
    kl_q = 0.5 * np.log(1.2) + 0.5 * np.log(6 / 7)
    assert float(jensen_shannon_shape(g, ref)) == pytest.approx(0.5 * (kl_p + kl_q))
    assert float(rdf_mae(g, ref)) == pytest.approx(1 / 3)
    assert float(jensen_shannon(ref, ref)) == 0.0 and float(wright_factor(ref, ref)) == 0.0
    empty = xr.full_like(g, np.nan)  # a replica that failed before its first stored frame
    assert np.isnan(float(jensen_shannon(empty, ref))) and np.isnan(float(wright_factor(empty, ref)))
    assert np.isnan(float(rdf_mae(empty, ref)))


def test_comparison_uses_the_reference_at_the_same_state_point():
    r = np.linspace(0.1, 5, 50)
    base = 1 + np.exp(-((r - 3.7) ** 2))
    index = pd.MultiIndex.from_tuples(
        [("lj", "ar", 100.0, 0.0), ("lj", "ar", 100.0, 0.0), ("gnn", "ar", 100.0, 0.0), ("gnn", "ar", 50.0, 0.0)],
        names=["forcefield", "system", "temperature_K", "pressure_bar"],
    )
    g = xr.DataArray(
        np.stack([base, base, base + 0.05, base]),
        dims=("traj", "r_A"),
        coords={"traj": index, "r_A": r},
    )
    out = compare_structure(g, reference="lj")
    np.testing.assert_allclose(out["rdf_mae"].values[:3], [0.0, 0.0, 0.05])
    assert np.isnan(out["rdf_mae"].values[3])  # no reference run at 50 K
    assert out["structure_stable"].values.tolist()[:3] == [True, True, False]


def test_a_scaled_rdf_is_seen_by_the_jsd_and_the_wright_factor_but_not_by_the_shape_jsd():
    r = np.linspace(0.05, 10.0, 200)
    ref = xr.DataArray(1.0 + np.exp(-((r - 3.8) ** 2) / 0.1) * 2.0, dims="r_A", coords={"r_A": r})
    scaled = 1.7 * ref
    assert float(jensen_shannon(scaled, ref)) > 0.01
    assert float(wright_factor(scaled, ref)) == pytest.approx(0.7)  # |1.7 − 1|, square-rooted form
    assert float(jensen_shannon_shape(scaled, ref)) == pytest.approx(0.0, abs=1e-12)
