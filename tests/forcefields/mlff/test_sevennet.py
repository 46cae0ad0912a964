"""``kind: sevennet``: SevenNet-0 (shipped in the ``sevenn`` wheel, loads offline) driven over
whole packs on the engine's own neighbour list.

Runs where ``sevenn`` is installed (the ``[sevennet]`` extra, e3nn >= 0.5: ``.ci/adapters``
tests it in the e3nn family's environment). SevenNet computes in float32, so tolerances are
float32 round-off: measured 2.4e-7 eV/Å on forces of ≈0.07 eV/Å against its own calculator
(a different edge order: ≈30 ulp of the largest force) and checked at 1e-5 of it.
"""

from __future__ import annotations

import os

import pytest
import torch

from hts_mlff.engine.forcefield import check_forcefield
from hts_mlff.forcefields.graph_edges import environment_restored
from hts_mlff.forcefields.kinds import build_forcefield
from hts_mlff.spec.model import SevenNetSpec
from hts_mlff.spec.trust import CodeNotAllowedError, approved, file_approval
from hts_mlff.tasks import forcefield_checksum
from tests.conftest import batch
from tests.forcefields.mlff.common import (
    assert_matches_calculator,
    assert_pack_equals_replicas_alone,
    different_sizes,
    kill_and_resume_matches,
)

with environment_restored():
    pytest.importorskip("sevenn.checkpoint")


@pytest.fixture(scope="module")
def sevennet():
    return build_forcefield(SevenNetSpec(kind="sevennet", model="7net-0"))


def test_a_pack_of_three_sizes_passes_the_contract(sevennet):
    state = batch(different_sizes())
    problems = check_forcefield(sevennet, state, displacement_A=1e-2, atol_eV_per_A=2e-4)
    assert problems == [] and sevennet.cutoff_A == 5.0


def test_energy_forces_and_stress_equal_the_packages_own_calculator(sevennet):
    with environment_restored():
        from sevenn.calculator import SevenNetCalculator

        calc = SevenNetCalculator("7net-0", device="cpu")
    assert_matches_calculator(sevennet, different_sizes(), calc, energy_rtol=1e-6, relative=1e-5)


def test_a_pack_equals_each_replica_alone_to_float32_round_off(sevennet):
    assert_pack_equals_replicas_alone(sevennet, different_sizes(), rtol=64 * torch.finfo(torch.float32).eps)


def test_a_shipped_checkpoints_bytes_are_its_identity_and_a_users_checkpoint_is_code(tmp_path, monkeypatch):
    from hts_mlff.forcefields.sevennet import pretrained_checkpoint

    shipped = pretrained_checkpoint("7net-0")
    spec = SevenNetSpec(kind="sevennet", model="7net-0")
    assert spec.identity_paths() == {"model": str(shipped)} and spec.code_paths() == {}
    mine = tmp_path / "mine.pth"
    mine.write_bytes(shipped.read_bytes())
    own = SevenNetSpec(kind="sevennet", model="mine.pth")
    before = forcefield_checksum(own, base_dir=tmp_path)
    assert own.code_paths() == {"model": "mine.pth"}
    monkeypatch.setenv("HTS_MLFF_CONFIG", str(tmp_path / "none.yaml"))
    with pytest.raises(CodeNotAllowedError, match=r"mine\.pth"):
        build_forcefield(own, base_dir=tmp_path)
    with approved([file_approval(mine)]):
        assert build_forcefield(own, base_dir=tmp_path).cutoff_A == 5.0
    data = bytearray(mine.read_bytes())
    data[-30] ^= 1
    mine.write_bytes(bytes(data))
    assert forcefield_checksum(own, base_dir=tmp_path) != before
    assert "TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD" not in os.environ


def test_kill_minus_9_then_resume_gives_the_same_store(tmp_path):
    kill_and_resume_matches(tmp_path, {"kind": "sevennet", "model": "7net-0"}, steps=20)
