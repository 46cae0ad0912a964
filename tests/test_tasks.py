"""Expansion of sweeps into content-addressed tasks and chunk-aligned packs."""

from __future__ import annotations

import numpy as np

from hts_mlff.spec import parse_campaign
from hts_mlff.tasks import expand
from tests.spec.test_load import GOOD


def _plan(text: str):
    spec, _ = parse_campaign(text, file="c.yaml")
    return expand(spec, base_dir=None)


def test_product_by_default():
    plan = _plan(
        GOOD.replace(
            "  temperature_K: [50, 60]", "  temperature_K: [50, 60]\n  seed: [0, 1, 2]\n  pressure_bar: [0, 100]"
        )
    )
    assert len(plan.tasks) == 2 * 3 * 2
    assert plan.atom_steps == 12 * 32 * 100
    assert len(set(plan.tasks.task_id)) == 12


def test_zip_groups_advance_together():
    text = GOOD.replace(
        "  temperature_K: [50, 60]",
        "  temperature_K: [50, 60, 70]\n  pressure_bar: [0, 10, 20]\n"
        "  seed: [0, 1]\n  zip: [[temperature_K, pressure_bar]]",
    )
    plan = _plan(text)
    assert len(plan.tasks) == 3 * 2
    pairs = set(zip(plan.tasks.temperature_K.tolist(), plan.tasks.pressure_bar.tolist(), strict=True))
    assert pairs == {(50.0, 0.0), (60.0, 10.0), (70.0, 20.0)}


def test_task_ids_are_stable_and_change_with_what_matters():
    base = _plan(GOOD)
    again = _plan(GOOD)
    assert list(base.tasks.task_id) == list(again.tasks.task_id)
    more = _plan(GOOD.replace("[50, 60]", "[50, 60, 70]"))
    assert set(base.tasks.task_id) < set(more.tasks.task_id)
    other_ff = _plan(GOOD.replace("sigma_A: 3.4", "sigma_A: 3.41"))
    assert not set(base.tasks.task_id) & set(other_ff.tasks.task_id)
    other_pack = _plan(GOOD + "execution: {pack_size: 1}\n")
    assert list(base.tasks.task_id) == list(other_pack.tasks.task_id)


def test_packs_are_contiguous_chunk_aligned_and_single_forcefield():
    text = GOOD.replace(
        "forcefields:\n", "forcefields:\n  lj2: {kind: lennard_jones, epsilon_eV: 0.011, sigma_A: 3.4, cutoff_A: 8.5}\n"
    ).replace("  temperature_K: [50, 60]", "  temperature_K: [50, 60, 70]\n  seed: [0, 1, 2]")
    plan = _plan(text + "execution: {pack_size: 4}\n")
    assert plan.chunk_size == 4
    seen = np.concatenate([p.rows for p in plan.packs])
    assert sorted(seen.tolist()) == list(range(len(plan.tasks)))
    for pack in plan.packs:
        assert pack.slot_start % plan.chunk_size == 0
        assert len(pack.rows) <= plan.chunk_size
        assert len(set(plan.tasks.forcefield[pack.rows])) == 1
        assert np.all(np.diff(pack.rows) == 1)


def test_auto_pack_size_follows_the_memory_model():
    plan = _plan(GOOD.replace("[50, 60]", str(list(range(1, 301)))) + "execution: {max_atoms_per_pack: 320}\n")
    assert plan.chunk_size == 10  # 320 atoms / 32 atoms per replica
    assert len(plan.packs) == 30


def test_expanding_a_hundred_thousand_tasks():
    text = GOOD.replace("[50, 60]", str(list(range(1, 101)))).replace(
        "sweep:\n", "sweep:\n  seed: " + str(list(range(1000))) + "\n"
    )
    plan = _plan(text)
    assert len(plan.tasks) == 100_000
    assert len(set(plan.tasks.task_id)) == 100_000
