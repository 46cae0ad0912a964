"""``kind: chgnet``: CHGNet 0.3.0 (shipped in the ``chgnet`` wheel, loads offline) on crystal
graphs built from the engine's own neighbour list, the whole pack in one forward.

Runs where ``chgnet`` is installed (the ``[chgnet]`` extra; ``.ci/adapters`` tests it in the
e3nn family's environment). CHGNet computes in float32: measured against its own calculator
(its own graph converter) 1.7e-7 eV/Å on forces of ≈0.03 eV/Å on argon, checked at 1e-5 of
the largest force. Li2O (Li–O 2 Å) exercises the bond graph's angles; argon (nearest
neighbours 3.8 Å, beyond the 3 Å bond cutoff) has none.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from hts_mlff.engine.forcefield import check_forcefield
from hts_mlff.forcefields.graph_edges import environment_restored
from hts_mlff.forcefields.kinds import build_forcefield
from hts_mlff.spec.model import CHGNetSpec
from tests.conftest import REPO, batch
from tests.forcefields.mlff.common import (
    assert_matches_calculator,
    assert_pack_equals_replicas_alone,
    different_sizes,
    kill_and_resume_matches,
    li2o_sizes,
)

with environment_restored():
    pytest.importorskip("chgnet.model")


@pytest.fixture(scope="module")
def chgnet():
    return build_forcefield(CHGNetSpec(kind="chgnet", model="0.3.0"))


def test_a_pack_of_three_sizes_passes_the_contract(chgnet):
    problems = check_forcefield(chgnet, batch(different_sizes()), displacement_A=1e-2, atol_eV_per_A=5e-4)
    assert problems == [] and chgnet.cutoff_A == 6.0


def test_li2o_forces_are_the_gradient_of_its_energy(chgnet):
    """Finite differences of a float32 energy: CHGNet sums float32 site energies (≈ −4.7 eV,
    ulp 5e-7) over a system, so the energies of the 24- and 36-atom replicas carry ≈ 2e-5 eV of
    round-off and a central difference over 0.02 Å ≈ 1e-3 eV/Å (measured: the difference stops
    converging below 0.01 Å); checked at 4e-3 eV/Å. That the forces are CHGNet's own is the
    calculator test's job (1e-5 of the largest force)."""
    problems = check_forcefield(chgnet, batch(li2o_sizes()[:2]), displacement_A=1e-2, atol_eV_per_A=4e-3)
    assert problems == []


@pytest.mark.parametrize("replicas", [different_sizes, li2o_sizes], ids=["argon", "li2o"])
def test_energy_forces_and_stress_equal_the_packages_own_calculator(chgnet, replicas):
    with environment_restored():
        from chgnet.model.dynamics import CHGNetCalculator

        calc = CHGNetCalculator(model=chgnet.model, use_device="cpu")
    assert_matches_calculator(chgnet, replicas(), calc, energy_rtol=2e-6, relative=1e-5)


def test_the_bond_graph_holds_every_angle_of_short_bonds_once(chgnet):
    """A center with k bonds shorter than 3 Å (ASE's own neighbour list counts them: O has 8 Li
    at 2.0 Å, Li 4 O at 2.0 Å and 6 Li at 2.3 Å) has k(k − 1) ordered angles, no edge paired
    with itself."""
    from ase.neighborlist import neighbor_list

    atoms = li2o_sizes()[0]
    (graph,) = chgnet.crystal_graphs(batch([atoms]), neighbors=None)
    k = np.bincount(neighbor_list("i", atoms, chgnet.bond_cutoff_A), minlength=len(atoms))
    assert sorted(set(k.tolist())) == [8, 10]
    angles = np.bincount(graph.bond_graph[:, 0].numpy(), minlength=len(atoms))
    np.testing.assert_array_equal(angles, k * (k - 1))
    centers = graph.atom_graph[:, 0]
    assert torch.equal(centers[graph.bond_graph[:, 2]], graph.bond_graph[:, 0])
    assert torch.equal(centers[graph.bond_graph[:, 4]], graph.bond_graph[:, 0])
    assert not bool((graph.bond_graph[:, 2] == graph.bond_graph[:, 4]).any())


def test_a_pack_equals_each_replica_alone_to_float32_round_off(chgnet):
    assert_pack_equals_replicas_alone(chgnet, li2o_sizes(), rtol=64 * torch.finfo(torch.float32).eps)


def test_kill_minus_9_then_resume_gives_the_same_store(tmp_path):
    kill_and_resume_matches(tmp_path, {"kind": "chgnet", "model": "0.3.0"}, steps=20)


def test_the_li2o_zoo_campaign_validates_where_its_packages_are_installed():
    from hts_mlff.forcefields.kinds import KINDS
    from hts_mlff.spec import load_campaign

    if not KINDS["sevennet"].installed():
        pytest.skip("the Li2O zoo also needs [sevennet]")
    loaded = load_campaign(REPO / "campaigns" / "mlff-zoo-li2o.yaml")
    assert set(loaded.spec.forcefields) == {"teter", "gnn", "chgnet", "sevennet"}
