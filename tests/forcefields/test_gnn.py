"""The GNN force field: symmetries, batching, the conservative variant and the direct model's Hessian."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from hts_mlff.engine.forcefield import check_forcefield
from hts_mlff.forcefields import GNNConfig, GNNForceField
from tests.conftest import argon, batch

SMALL = {"hidden": 16, "n_layers": 2, "n_rbf": 12, "force_scale_eV_per_A": 0.02}


def small_gnn(*, conservative: bool, seed: int = 0, table: bool = True) -> GNNForceField:
    return GNNForceField(
        GNNConfig(conservative=conservative, **SMALL),
        seed=seed,
        dtype=torch.float64,
        radial_table_points=2048 if table else 0,
    )


def rotation(seed: int) -> np.ndarray:
    q, r = np.linalg.qr(np.random.default_rng(seed).normal(size=(3, 3)))
    q = q * np.sign(np.diag(r))
    return q if np.linalg.det(q) > 0 else -q


@pytest.mark.parametrize("conservative", [False, True])
def test_forces_rotate_translate_and_permute_with_the_structure(conservative):
    ff = small_gnn(conservative=conservative)
    atoms = argon(repeat=3, rattle=0.15, seed=3)
    base = ff(batch([atoms]), compute_stress=False).forces.numpy()
    scale = np.abs(base).max()
    assert scale > 1e-8  # a random network still gives non-trivial forces

    rot = rotation(1)
    turned = atoms.copy()
    turned.set_cell(atoms.cell.array @ rot.T, scale_atoms=False)
    turned.positions = atoms.positions @ rot.T
    np.testing.assert_allclose(ff(batch([turned])).forces.numpy(), base @ rot.T, atol=1e-9 * scale)

    shifted = atoms.copy()
    shifted.positions += np.array([1.3, -7.1, 0.4])
    np.testing.assert_allclose(ff(batch([shifted])).forces.numpy(), base, atol=1e-9 * scale)

    perm = np.random.default_rng(2).permutation(len(atoms))
    permuted = atoms[perm]
    np.testing.assert_allclose(ff(batch([permuted])).forces.numpy(), base[perm], atol=1e-9 * scale)


@pytest.mark.parametrize("conservative", [False, True])
def test_batched_equals_single_system(conservative):
    ff = small_gnn(conservative=conservative)
    systems = [argon(repeat=3, rattle=0.1, seed=s) for s in range(2)] + [argon(repeat=3, rattle=0.1, seed=5, drop=1)]
    together = ff(batch(systems))
    offset = 0
    for k, atoms in enumerate(systems):
        alone = ff(batch([atoms]))
        n = len(atoms)
        np.testing.assert_allclose(together.forces[offset : offset + n].numpy(), alone.forces.numpy(), atol=1e-12)
        np.testing.assert_allclose(together.energy[k].item(), alone.energy[0].item(), rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(together.stress[k].numpy(), alone.stress[0].numpy(), atol=1e-12)
        offset += n


def test_direct_model_has_zero_net_force_and_no_energy():
    ff = small_gnn(conservative=False)
    out = ff(batch([argon(repeat=3, rattle=0.2, seed=1)]))
    assert abs(out.forces.sum(0)).max().item() < 1e-12
    assert out.energy.abs().max().item() == 0.0


def test_conservative_forces_are_minus_the_energy_gradient():
    ff = small_gnn(conservative=True)
    state = batch([argon(repeat=3, rattle=0.1, seed=s) for s in range(2)])
    assert check_forcefield(ff, state, displacement_A=1e-5, atol_eV_per_A=1e-8) == []


def test_conservative_stress_is_the_strain_derivative_of_the_energy():
    ff = small_gnn(conservative=True)
    atoms = argon(repeat=3, rattle=0.1, seed=4)
    stress = ff(batch([atoms])).stress[0].numpy()
    volume = atoms.get_volume()
    h = 1e-6
    for a, b in [(0, 0), (1, 1), (0, 1), (1, 2)]:
        energies = []
        for sign in (1.0, -1.0):
            strain = np.eye(3)
            strain[a, b] += sign * h / 2
            strain[b, a] += sign * h / 2
            deformed = atoms.copy()
            deformed.set_cell(atoms.cell.array @ strain, scale_atoms=True)
            energies.append(ff(batch([deformed]), compute_stress=False).energy.item())
        numeric = (energies[0] - energies[1]) / (2 * h) / volume
        assert stress[a, b] == pytest.approx(numeric, rel=1e-5, abs=1e-10)


def hessian_block(ff: GNNForceField, atoms, i: int, j: int, *, h: float = 1e-5) -> tuple[np.ndarray, np.ndarray]:
    """H_ij = −∂F_i/∂r_j and H_ji by central differences, (3, 3) each, eV/Å²."""

    def column(target: int, source: int) -> np.ndarray:
        out = np.zeros((3, 3))
        for b in range(3):
            forces = []
            for sign in (1.0, -1.0):
                moved = atoms.copy()
                moved.positions[source, b] += sign * h
                forces.append(ff(batch([moved]), compute_stress=False).forces[target].numpy())
            out[:, b] = -(forces[0] - forces[1]) / (2 * h)
        return out

    return column(i, j), column(j, i)


def test_hessian_is_symmetric_only_for_the_conservative_variant():
    atoms = argon(repeat=3, rattle=0.1, seed=6)
    i, j = 0, 1  # nearest neighbours in the FCC cell
    h_ij, h_ji = hessian_block(small_gnn(conservative=True, table=False), atoms, i, j)
    assert np.abs(h_ij - h_ji.T).max() < 1e-7 * np.abs(h_ij).max()
    # Random direct networks depend only weakly on the environment: a small but clear asymmetry.
    h_ij, h_ji = hessian_block(small_gnn(conservative=False, table=False), atoms, i, j)
    assert np.abs(h_ij - h_ji.T).max() > 1e-5 * np.abs(h_ij).max()


def test_unknown_species_are_refused():
    ff = small_gnn(conservative=False)
    atoms = argon(repeat=3)
    atoms.numbers[0] = 36
    with pytest.raises(ValueError, match=r"trained on atomic numbers \[18\].*\[36\]"):
        ff(batch([atoms]))


def test_float32_model_follows_float64_states():
    ff = GNNForceField(GNNConfig(**SMALL), seed=0)
    atoms = argon(repeat=3, rattle=0.1, seed=1)
    out = ff(batch([atoms], dtype=torch.float64))
    assert out.forces.dtype == torch.float64
    ref = small_gnn(conservative=False)(batch([atoms])).forces
    np.testing.assert_allclose(out.forces.numpy(), ref.numpy(), atol=1e-6)


@pytest.mark.parametrize("conservative", [False, True])
def test_tabulated_radial_terms_match_the_edge_networks(conservative):
    exact = GNNForceField(GNNConfig(conservative=conservative, **SMALL), dtype=torch.float64, radial_table_points=0)
    fast = GNNForceField(GNNConfig(conservative=conservative, **SMALL), dtype=torch.float64)
    state = batch([argon(repeat=3, rattle=0.1, seed=s) for s in range(2)])
    reference = exact(state).forces
    assert torch.abs(fast(state).forces - reference).max() < 1e-5 * torch.abs(reference).max()


def test_the_literal_directed_graph_evaluation_gives_the_same_forces():
    from hts_mlff.forcefields.gnn_reference import LiteralGNNCalculator

    ff = small_gnn(conservative=False, table=False)
    atoms = argon(repeat=3, rattle=0.1, seed=2)
    atoms.calc = LiteralGNNCalculator(ff)
    np.testing.assert_allclose(atoms.get_forces(), ff(batch([atoms])).forces.numpy(), atol=1e-12)


@pytest.mark.parametrize("table", [True, False])
def test_a_replica_with_nan_positions_leaves_the_others_alone(table):
    """Pairs with a NaN length are dropped (the guard freezes that replica on its NaN positions)."""
    from hts_mlff.engine.neighbors import PairList

    ff = small_gnn(conservative=False, table=table)
    systems = [argon(repeat=3, rattle=0.1, seed=s) for s in range(2)]
    state = batch(systems)
    nl = PairList(ff.cutoff_A, skin_A=1.0)
    nl.update(state)  # pairs built while every position was finite
    clean = ff(state, neighbors=nl).forces.clone()
    state.positions[108 + 5] = float("nan")  # replica 1 explodes between two list builds
    out = ff(state, neighbors=nl)
    assert torch.isfinite(out.forces[:108]).all()
    torch.testing.assert_close(out.forces[:108], clean[:108])
    assert torch.equal(out.forces[108 + 5], torch.zeros(3, dtype=out.forces.dtype))


def test_radial_table_takes_distances_at_the_cutoff_in_float32():
    from hts_mlff.forcefields.gnn import RadialTable

    ff = GNNForceField(GNNConfig(**SMALL), seed=0)
    table = RadialTable(ff.module)
    d = torch.tensor([0.0, 3.0, 7.4999995, 7.5], dtype=torch.float32)
    weights = table.weights(d)
    assert torch.isfinite(weights).all()
    assert torch.isnan(table.weights(torch.tensor([float("nan")]))).all()


def test_gnn_md_on_lists_from_the_compiled_builders_matches_the_torch_list(monkeypatch):
    """Where the kernels run, MD hands the GNN the half pair list derived from the compiled rows:
    the same pairs in the same order as the torch list, so the same trajectory bit for bit."""
    from hts_mlff.engine import MDProtocol, pack_run, run_md
    from hts_mlff.engine.kernels import kernels_enabled
    from hts_mlff.engine.neighbors import PairList, RowList, list_range_A

    if not kernels_enabled(torch.device("cpu")):
        pytest.skip("warp-lang not installed")
    runs = []
    for rows in (False, True):
        made = []

        def neighbor_list(forcefield, device, *, use_rows=rows, made=made, skin_A, min_pair_distance_A=0.0):
            range_A = list_range_A(forcefield.cutoff_A, min_pair_distance_A=min_pair_distance_A)
            made.append(RowList(range_A, skin_A=skin_A) if use_rows else PairList(range_A, skin_A=skin_A))
            return made[-1]  # whatever the engine would have chosen

        monkeypatch.setattr(pack_run, "neighbor_list_for", neighbor_list)
        state = batch([argon(repeat=2, rattle=0.05, seed=1), argon(repeat=3, rattle=0.05, seed=2)])
        run_md(
            state,
            small_gnn(conservative=False),
            protocol=MDProtocol(timestep_fs=10.0, production_steps=12, sample_every_steps=6, ensemble="nvt"),
            temperature_K=torch.tensor([60.0, 90.0], dtype=torch.float64),
            pressure_bar=torch.zeros(2, dtype=torch.float64),
            keys=[5, 6],
        )
        assert (made[0].rows is not None) == rows
        runs.append(state.positions.clone())
    assert torch.equal(runs[0], runs[1])
