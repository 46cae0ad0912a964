"""Compiled (Warp) hot path against the torch path it replaces: rows, pair sums, guard numbers, MD."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from hts_mlff.engine.kernels import kernels_enabled
from hts_mlff.engine.md import MDProtocol, run_md
from hts_mlff.engine.neighbors import PairList, RowList
from hts_mlff.engine.observers import SnapshotObserver, ThermoObserver
from hts_mlff.engine.state import BatchState
from hts_mlff.forcefields import LennardJones
from hts_mlff.forcefields.lennard_jones import PairParameters
from tests.conftest import CUTOFF_A, EPSILON_EV, SIGMA_A, argon, batch

pytestmark = pytest.mark.skipif(not kernels_enabled(torch.device("cpu")), reason="warp-lang not installed")


def _sheared(atoms, *, shear: float = 0.15):
    cell = np.array(atoms.cell)
    cell[1] += shear * cell[0]
    cell[2] += 0.5 * shear * cell[1]
    atoms.set_cell(cell, scale_atoms=True)
    return atoms


def _mixed_state(dtype: torch.dtype = torch.float64) -> BatchState:
    """Three systems: a sheared crystal, the same minus an atom with Kr on some sites, a small
    cell narrower than twice the list range (periodic images of atoms themselves: vesin rows)."""
    a = _sheared(argon(repeat=4, rattle=0.08, seed=1))
    b = _sheared(argon(repeat=4, rattle=0.08, seed=2, drop=1))
    b.numbers[::7] = 36
    small = argon(repeat=2, rattle=0.05, seed=3)
    small.positions += np.array([11.0, -23.0, 40.0])  # unwrapped, far from the cell
    return batch([a, b, small], dtype=dtype)


def _lj() -> LennardJones:
    pairs = [PairParameters(18, 36, 0.0138, 3.5), PairParameters(36, 36, 0.0171, 3.6)]
    return LennardJones(EPSILON_EV, sigma_A=SIGMA_A, cutoff_A=CUTOFF_A, pairs=pairs)


@pytest.mark.parametrize("half_rows", [True, False])
def test_rows_hold_the_torch_lists_pairs_in_canonical_order(half_rows):
    state = _mixed_state()
    torch_list = PairList(CUTOFF_A, skin_A=1.0)
    torch_list.build(state)
    rows = RowList(CUTOFF_A, skin_A=1.0, half_rows=half_rows)
    rows.build(state)
    assert torch.equal(rows.pair_i, torch_list.pair_i)
    assert torch.equal(rows.pair_j, torch_list.pair_j)
    assert torch.equal(rows.pair_shift, torch_list.pair_shift)
    counts = rows.rows.counts.long()
    for atom in range(0, state.n_atoms, 37):  # every row sorted by (neighbour, shift code)
        row = rows.rows.neighbors[atom, : counts[atom]].long() * (1 << 30) + rows.rows.shift_code[atom, : counts[atom]]
        assert torch.equal(row, torch.sort(row).values)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("half_rows", [True, False, "chunked"])
def test_kernel_forces_energy_stress_match_the_torch_path(monkeypatch, dtype, half_rows):
    if half_rows == "chunked":  # half rows with each system cut into chunks (one array copy each)
        from hts_mlff.engine.kernels import neighbor_matrix

        monkeypatch.setattr(neighbor_matrix, "CHUNK_ATOMS", 8)
        half_rows = True
    state = _mixed_state(dtype)
    lj = _lj()
    reference_list = PairList(CUTOFF_A, skin_A=1.0)
    reference_list.update(state)
    reference = lj.forward(state, neighbors=reference_list)
    rows = RowList(CUTOFF_A, skin_A=1.0, half_rows=half_rows)
    rows.update(state)
    tol = dict(rtol=1e-11, atol=1e-13) if dtype == torch.float64 else dict(rtol=2e-5, atol=2e-6)
    for stress in (False, True, False, True):  # passes in a row: kept arrays start clean each time
        out = lj.forward(state, neighbors=rows, compute_stress=stress)
        torch.testing.assert_close(out.forces, reference.forces, **tol)
        torch.testing.assert_close(out.energy, reference.energy, **tol)
    torch.testing.assert_close(out.stress, reference.stress, **tol)
    # the guard's numbers come out of the same pass
    r = torch.linalg.vector_norm(reference_list.pair_vectors(state), dim=1)
    closest = torch.full((3,), torch.inf, dtype=dtype).scatter_reduce(0, reference_list.pair_system, r, reduce="amin")
    torch.testing.assert_close(out.min_pair_distance_A, closest, **tol)
    largest = torch.stack([reference.forces[state.system_slice(s)].norm(dim=1).max() for s in range(3)])
    torch.testing.assert_close(out.max_force_eV_per_A, largest, **tol)


def test_full_rows_give_bit_identical_forces_whoever_shares_the_pack():
    """The GPU form (one thread per atom over its full row, no atomics), run here on the CPU."""
    lj = LennardJones(EPSILON_EV, sigma_A=SIGMA_A, cutoff_A=CUTOFF_A)
    systems = [argon(rattle=0.1, seed=k, drop=k % 2) for k in range(3)]

    def forces(atoms_list):
        state = batch(atoms_list)
        rows = RowList(CUTOFF_A, skin_A=1.0, half_rows=False)
        rows.update(state)
        return lj.forward(state, neighbors=rows)

    together = forces(systems)
    offsets = np.cumsum([0] + [len(a) for a in systems])
    for k, atoms in enumerate(systems):
        alone = forces([atoms])
        assert torch.equal(alone.forces, together.forces[offsets[k] : offsets[k + 1]])
        assert torch.equal(alone.energy[0], together.energy[k])
        assert torch.equal(alone.stress[0], together.stress[k])


def test_rows_rebuild_only_the_systems_that_moved():
    state = batch([argon(repeat=3), argon(repeat=3)])
    nl = RowList(CUTOFF_A, skin_A=1.0)
    assert nl.update(state)
    before = nl.rows.neighbors.clone()
    state.positions[5, 0] += 0.6  # system 0 only
    assert nl.update(state)
    assert nl.rows.n_system_builds == 3  # two at first, then system 0 alone
    n0 = state.system_slice(0).stop
    assert torch.equal(nl.rows.neighbors[n0:], before[n0:])
    assert not nl.update(state)


def test_rows_grow_when_an_atom_has_more_neighbours_than_expected(monkeypatch):
    from hts_mlff.engine.kernels import neighbor_matrix

    monkeypatch.setattr(neighbor_matrix.NeighborMatrix, "_estimate_width", lambda self, state: 4)
    state = _mixed_state()
    nl = RowList(CUTOFF_A, skin_A=1.0)
    nl.build(state)
    reference = PairList(CUTOFF_A, skin_A=1.0)
    reference.build(state)
    assert nl.rows.neighbors.shape[1] >= int(nl.rows.counts.max()) > 4
    assert torch.equal(nl.pair_j, reference.pair_j)


def test_a_replica_with_non_finite_positions_gets_empty_rows():
    state = batch([argon(repeat=3), argon(repeat=3)])
    state.positions[3, 1] = float("nan")
    nl = RowList(CUTOFF_A, skin_A=1.0)
    nl.build(state)
    n0 = state.system_slice(0).stop
    assert int(nl.rows.counts[:n0].max()) == 0
    assert int(nl.rows.counts[n0:].sum()) == 108 * 78 // 2  # the other system's pairs, each once


def _md(monkeypatch, kernels: str, *, ensemble: str):
    monkeypatch.setenv("HTS_MLFF_KERNELS", kernels)
    state = batch([_sheared(argon(rattle=0.05, seed=1)), argon(rattle=0.05, seed=2, drop=1)])
    return run_md(
        state,
        LennardJones(EPSILON_EV, sigma_A=SIGMA_A, cutoff_A=CUTOFF_A),
        protocol=MDProtocol(
            timestep_fs=10.0, production_steps=60, sample_every_steps=20, ensemble=ensemble, equilibration_steps=0
        ),
        temperature_K=torch.tensor([60.0, 90.0], dtype=torch.float64),
        pressure_bar=torch.tensor([0.0, 300.0], dtype=torch.float64),
        keys=[5, 6],
        observers=[ThermoObserver(), SnapshotObserver("positions", every_samples=1)],
    )


@pytest.mark.parametrize("ensemble", ["nve", "nvt", "npt"])
def test_md_on_the_kernel_path_follows_the_torch_path(monkeypatch, ensemble):
    """The same trajectory to round-off over 60 steps: the fused Langevin update draws the torch
    path's random numbers; only the order of sums differs."""
    fast = _md(monkeypatch, "auto", ensemble=ensemble)
    reference = _md(monkeypatch, "torch", ensemble=ensemble)
    np.testing.assert_allclose(fast["positions"], reference["positions"], rtol=0, atol=1e-8)
    np.testing.assert_allclose(fast["total_energy_eV"], reference["total_energy_eV"], rtol=1e-10)
    np.testing.assert_allclose(fast["virial_pressure_bar"], reference["virial_pressure_bar"], rtol=1e-7, atol=1e-6)


def test_rows_go_stale_after_half_the_skin_or_a_strain():
    state = batch([argon(repeat=3), argon(repeat=3)])
    nl = RowList(8.5, skin_A=0.5)
    nl.update(state)
    state.positions[0, 0] += 0.2
    assert nl.rows.stale_systems(state).tolist() == [False, False]
    state.positions[0, 0] += 0.1  # 0.3 Å > skin / 2
    assert nl.rows.stale_systems(state).tolist() == [True, False]
    nl.update(state)
    # a uniform strain ε changes pair distances by at most ε·(cutoff + skin)
    n0 = state.system_slice(0).stop
    state.positions[n0:] *= 1.02
    state.cell[1] *= 1.02
    assert nl.rows.stale_systems(state).tolist() == [False, False]  # 0.02 · 9 Å < skin
    state.positions[n0:] *= 1.05
    state.cell[1] *= 1.05
    assert nl.rows.stale_systems(state).tolist() == [False, True]
    state.positions[2, 2] = float("nan")
    assert nl.rows.stale_systems(state).tolist() == [True, True]


def test_a_replica_flung_hundreds_of_cells_away_gets_empty_rows_not_an_error():
    state = batch([argon(repeat=3), argon(repeat=3)])
    state.positions[:5] += 1.0e6  # an explosion between two guard checks
    nl = RowList(CUTOFF_A, skin_A=1.0)
    nl.build(state)
    n0 = state.system_slice(0).stop
    assert int(nl.rows.counts[:n0].max()) == 0
    assert int(nl.rows.counts[n0:].sum()) == 108 * 78 // 2


@pytest.mark.parametrize("chunk_atoms", [512, 8])
def test_threads_split_the_work_but_not_the_bits(monkeypatch, chunk_atoms):
    """Kernels split over threads (whole chunks of a system for the half-row pair kernel, each
    chunk adding into its own copy of the arrays): same trajectory, bit for bit."""
    from hts_mlff.engine.kernels import integrator, neighbor_matrix

    split = ((neighbor_matrix, "MIN_SPAN"), (neighbor_matrix, "MIN_BUILD_SPAN"), (neighbor_matrix, "MIN_LIGHT_SPAN"))
    for module, name in (*split, (integrator, "MIN_LIGHT_SPAN"), (integrator, "MIN_THERMOSTAT_SPAN")):
        monkeypatch.setattr(module, name, 1)  # split these small systems as if they were large
    monkeypatch.setattr(neighbor_matrix, "CHUNK_ATOMS", chunk_atoms)  # 8: up to 8 chunks per system
    before = torch.get_num_threads()
    try:
        runs = []
        for threads in (1, 2, 3):
            torch.set_num_threads(threads)
            runs.append(_md(monkeypatch, "auto", ensemble="nvt"))
    finally:
        torch.set_num_threads(before)
    for other in runs[1:]:
        np.testing.assert_array_equal(other["positions"], runs[0]["positions"])
        np.testing.assert_array_equal(other["total_energy_eV"], runs[0]["total_energy_eV"])


@pytest.mark.parametrize("ensemble", ["nvt", "npt"])
def test_a_replayed_launch_equals_a_fresh_one_bit_for_bit(monkeypatch, ensemble):
    """Recorded launches replayed with the addresses of fresh arrays set anew (kernels.launch)
    give the bits of launches packed afresh: whole MD runs split over two threads, and two
    evaluations of same-shaped packs alive at once (so every array address differs)."""
    from hts_mlff.engine import kernels
    from hts_mlff.engine.kernels import integrator, neighbor_matrix

    for module, name in (
        (neighbor_matrix, "MIN_SPAN"),
        (neighbor_matrix, "MIN_LIGHT_SPAN"),
        (integrator, "MIN_LIGHT_SPAN"),
    ):
        monkeypatch.setattr(module, name, 1)  # several spans per launch
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        runs, evaluations = {}, {}
        for replay in (True, False):
            monkeypatch.setattr(kernels, "REPLAY_LAUNCHES", replay)
            kernels._local().commands.clear()
            runs[replay] = _md(monkeypatch, "auto", ensemble=ensemble)
            if replay:
                assert kernels._local().commands  # launches were recorded and replayed
            lj = _lj()
            states = [_mixed_state(), _mixed_state()]
            states[1].positions = states[1].positions * 1.001
            lists = [RowList(CUTOFF_A, skin_A=1.0) for _ in states]
            outputs = []
            for state, rows in zip(states, lists, strict=True):
                rows.update(state)
                outputs.append(lj.forward(state, neighbors=rows, compute_stress=True))
            evaluations[replay] = outputs
    finally:
        torch.set_num_threads(before)
    for name in ("positions", "total_energy_eV", "virial_pressure_bar"):
        np.testing.assert_array_equal(runs[True][name], runs[False][name])
    for replayed, fresh in zip(evaluations[True], evaluations[False], strict=True):
        for name in ("energy", "forces", "stress", "atom_energy", "atom_virial", "min_pair_distance_A"):
            assert torch.equal(getattr(replayed, name), getattr(fresh, name)), name
    assert not torch.equal(evaluations[True][0].forces, evaluations[True][1].forces)


def test_a_frozen_replica_is_skipped_and_changes_no_other_bits():
    good = argon(rattle=0.05, seed=2)
    bad = argon(rattle=0.05, seed=1)
    bad.positions[1] = bad.positions[0] + [0.9, 0.0, 0.0]  # fused: frozen at the first check
    lj = LennardJones(EPSILON_EV, sigma_A=SIGMA_A, cutoff_A=CUTOFF_A)
    protocol = MDProtocol(timestep_fs=10.0, production_steps=60, sample_every_steps=20, ensemble="nvt")

    def run(systems, keys):
        state = batch(systems)
        result = run_md(
            state,
            lj,
            protocol=protocol,
            temperature_K=torch.full((len(systems),), 80.0, dtype=torch.float64),
            pressure_bar=torch.zeros(len(systems), dtype=torch.float64),
            keys=keys,
            observers=[ThermoObserver(), SnapshotObserver("positions", every_samples=1)],
        )
        return result, state

    pack, state = run([bad, good], [1, 2])
    alone, _ = run([good], [2])
    assert pack["failure_step"].tolist() == [0, -1]
    np.testing.assert_array_equal(pack["positions"][1], alone["positions"][0])
    n = len(bad)
    rows = RowList(CUTOFF_A, skin_A=1.0)  # the engine's layout on a CPU, with the guard's mask
    rows.update(state)
    rows.set_active(torch.tensor([False, True]))
    assert rows.rows.active32.tolist() == [0, 1]
    assert int(rows.rows.counts[:n].sum()) > 0  # rows kept, never walked: forces zero
    assert float(lj.forward(state, neighbors=rows).forces[:n].abs().max()) == 0.0


@pytest.mark.parametrize("half_rows", [True, False])
@pytest.mark.parametrize("split", [1, 3])
def test_cell_list_rows_of_large_systems_match_the_torch_list(monkeypatch, half_rows, split):
    from hts_mlff.engine.kernels import neighbor_matrix

    monkeypatch.setattr(neighbor_matrix, "MIN_IMAGE_MAX_ATOMS", 100)  # 864-atom cells take the bins
    monkeypatch.setattr(neighbor_matrix, "BIN_SPLIT", split)  # 3: bins of a third of the range, ±3 scanned
    big = _sheared(argon(repeat=6, rattle=0.1, seed=4), shear=0.1)  # bins of the whole range
    big.positions += np.array([-60.0, 17.0, 33.0])
    unwrapped = argon(repeat=6, rattle=0.3, seed=7)  # orthorhombic, far from the cell
    unwrapped.positions += np.array([45.0, -80.0, 3.0])
    state = batch([argon(repeat=6, rattle=0.1, seed=5), big, argon(repeat=2, rattle=0.05, seed=6), unwrapped])
    _assert_rows_hold_the_torch_list(state, half_rows=half_rows)


@pytest.mark.parametrize("half_rows", [True, False])
def test_cells_narrower_than_the_list_range_are_built_on_the_device(half_rows):
    """Cells narrower than the range (several images of a neighbour, the atom's own images) and
    quasi-1D cells, cubic and sheared, far from the cell: the rows hold the torch list's pairs."""
    unit = argon(repeat=1, rattle=0.05, seed=8)  # 5.3 Å: images out to ±2 cells
    rod = argon(repeat=(2, 2, 7), rattle=0.1, seed=9)  # 10.7 Å across: one bin that way
    rod.positions += np.array([30.0, -12.0, 5.0])
    state = batch(
        [unit, _sheared(argon(repeat=1, rattle=0.05, seed=10)), rod, _sheared(argon(repeat=(2, 2, 7), seed=11))]
    )
    _assert_rows_hold_the_torch_list(state, half_rows=half_rows)


def _assert_rows_hold_the_torch_list(state, *, half_rows: bool) -> None:
    """The compiled rows give the torch list's pairs (canonical order) and its forces."""
    reference = PairList(CUTOFF_A, skin_A=1.0)
    reference.build(state)
    rows = RowList(CUTOFF_A, skin_A=1.0, half_rows=half_rows)
    rows.build(state)
    assert torch.equal(rows.pair_i, reference.pair_i)
    assert torch.equal(rows.pair_j, reference.pair_j)
    assert torch.equal(rows.pair_shift, reference.pair_shift)
    lj = _lj()
    torch.testing.assert_close(
        lj.forward(state, neighbors=rows).forces, _torch_forces(state, lj), rtol=1e-11, atol=1e-13
    )


def _torch_forces(state, lj):
    state = state.clone()
    pairs = PairList(CUTOFF_A, skin_A=1.0)
    pairs.update(state)
    return lj.forward(state, neighbors=pairs).forces


@pytest.mark.parametrize("half_rows", [True, False, "chunked"])
def test_heat_current_from_the_kernels_partition_matches_the_pair_sum(monkeypatch, half_rows):
    """A stress step keeps half of each pair's energy and virial on each end (half rows write
    both ends), so J needs no second pass: equal to the torch path's pairwise current."""
    if half_rows == "chunked":
        from hts_mlff.engine.kernels import neighbor_matrix

        monkeypatch.setattr(neighbor_matrix, "CHUNK_ATOMS", 8)
        half_rows = True
    state = _mixed_state()
    state.velocities = torch.randn(state.n_atoms, 3, generator=torch.Generator().manual_seed(3), dtype=state.dtype)
    state.velocities *= 0.005
    lj = _lj()
    pairs = PairList(CUTOFF_A, skin_A=1.0)
    pairs.update(state)
    reference = lj.heat_current(state, neighbors=pairs)
    rows = RowList(CUTOFF_A, skin_A=1.0, half_rows=half_rows)
    rows.update(state)
    lean = lj.forward(state, neighbors=rows, compute_stress=False)
    assert lean.atom_virial is None  # plain steps keep no partition
    out = lj.forward(state, neighbors=rows, compute_stress=True)
    torch.testing.assert_close(out.atom_energy.reshape(-1).sum(), out.energy.sum(), rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(lj.heat_current(state, output=out), reference, rtol=1e-10, atol=1e-12)
    kept_energy, kept_virial = out.atom_energy.clone(), out.atom_virial.clone()
    noise = torch.randn(state.positions.shape, generator=torch.Generator().manual_seed(4), dtype=state.dtype)
    state.positions = state.positions + 0.01 * noise  # another evaluation writes the rows' scratch
    rows.update(state)
    again = lj.forward(state, neighbors=rows, compute_stress=True)
    assert not torch.equal(again.atom_energy, kept_energy)
    assert torch.equal(out.atom_energy, kept_energy) and torch.equal(out.atom_virial, kept_virial)


def test_packs_stepped_side_by_side_in_one_process_keep_their_bits():
    """Two packs of the same shape in two threads of one process (a worker with two threads):
    each ends exactly as when run alone (launch caches and views are kept per thread)."""
    import sys
    import threading

    def run(seed: int, out: dict) -> None:
        state = batch([argon(rattle=0.05, seed=seed), argon(rattle=0.05, seed=seed + 1)])
        result = run_md(
            state,
            _lj(),
            protocol=MDProtocol(timestep_fs=10.0, production_steps=80, sample_every_steps=40, ensemble="nvt"),
            temperature_K=torch.tensor([60.0, 90.0], dtype=torch.float64),
            pressure_bar=torch.zeros(2, dtype=torch.float64),
            keys=[seed, seed + 1],
        )
        out[seed] = (state.positions.clone(), result.atom_steps)

    alone: dict = {}
    for seed in (1, 3):
        run(seed, alone)
    together: dict = {}
    threads = [threading.Thread(target=run, args=(seed, together)) for seed in (1, 3)]
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads as often as Python allows: interleave the launches
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        sys.setswitchinterval(interval)
    for seed in (1, 3):
        assert torch.equal(together[seed][0], alone[seed][0]), seed


def test_kernel_threads_are_each_packs_own_and_torch_gets_its_threads_back():
    """Two packs overlapping in two threads of one worker (the first ends while the second runs):
    each splits its launches over the threads torch had before either began, torch runs on one
    until the last ends, then has its threads back, and a later ``set_num_threads`` holds."""
    import threading

    from hts_mlff.engine.kernels import kernel_threads, kernel_threads_for_pack

    before = torch.get_num_threads()
    seen: dict[str, int] = {}
    a_in, b_in, a_out = threading.Event(), threading.Event(), threading.Event()

    def pack_a() -> None:
        with kernel_threads_for_pack():
            seen["a"] = kernel_threads()
            a_in.set()
            b_in.wait(10)
        a_out.set()

    def pack_b() -> None:
        a_in.wait(10)
        with kernel_threads_for_pack():
            seen["b"] = kernel_threads()
            b_in.set()
            a_out.wait(10)
            seen["torch while b runs alone"] = torch.get_num_threads()
            seen["b after a ended"] = kernel_threads()
        with kernel_threads_for_pack(3):
            seen["b asked for 3"] = kernel_threads()

    try:
        torch.set_num_threads(2)
        workers = [threading.Thread(target=f) for f in (pack_a, pack_b)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join(30)
        assert seen == {"a": 2, "b": 2, "torch while b runs alone": 1, "b after a ended": 2, "b asked for 3": 3}
        assert torch.get_num_threads() == 2
        torch.set_num_threads(3)  # the user's later choice holds
        assert kernel_threads() == 3
    finally:
        torch.set_num_threads(before)


def test_an_untested_warp_release_runs_the_torch_path_unless_asked(monkeypatch, caplog):
    from hts_mlff.engine import kernels

    assert kernels.warp_release_tested("1.19.0") and kernels.warp_release_tested("1.18.2")
    assert not kernels.warp_release_tested("1.17.0") and not kernels.warp_release_tested("1.20.0")
    monkeypatch.setattr(kernels.warp(), "__version__", "1.15.0")
    monkeypatch.setenv("HTS_MLFF_KERNELS", "auto")
    with caplog.at_level("WARNING"):
        assert not kernels.kernels_enabled(torch.device("cpu"))
    assert "warp-lang 1.15.0 is outside" in caplog.text
    monkeypatch.setenv("HTS_MLFF_KERNELS", "warp")
    assert kernels.kernels_enabled(torch.device("cpu"))
