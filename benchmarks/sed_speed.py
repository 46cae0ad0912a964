"""SED of a stored 10⁴-atom × 1000-frame trajectory: wall time and peak memory, lazily from Zarr.

    python benchmarks/sed_speed.py [--repeat 5 5 100] [--frames 1000] [--grid-repeat 10 10 10]

Writes a store-shaped Zarr (velocities float64 in the campaign store's chunking: ≤ 64 MB per
chunk along time; lattice sites, basis index, atomic numbers), then, each in a fresh process:
(a) the SED on Γ–X along z (one k per cell along z) read chunk by chunk, as `hts-mlff thermal`
does; (b) the same with every velocity loaded first (the in-memory way) — the peer; (c) the SED
on the full k grid of a 10 × 10 × 10 cell (4,000 k points). Prints seconds, peak RSS and ratios.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import resource
import tempfile
import time
from pathlib import Path

import numpy as np


def write_store(path: Path, repeat: tuple[int, int, int], n_frames: int) -> None:
    import xarray as xr
    from ase.build import bulk

    atoms = bulk("Ar", "fcc", a=5.33, cubic=True).repeat(repeat)
    n = len(atoms)
    chunk = max(1, (64 * 2**20) // (n * 3 * 8))
    ds = xr.Dataset(
        {
            "lattice_site_A": (("traj", "atom", "xyz"), atoms.get_positions()[None]),
            "basis_index": (("traj", "atom"), np.zeros((1, n), dtype=np.int32)),
            "atomic_numbers": (("traj", "atom"), np.full((1, n), 18, dtype=np.int32)),
            "final_cell": (("traj", "cell_vector", "xyz"), np.asarray(atoms.cell)[None]),
        },
        coords={"velocity_time_fs": np.arange(n_frames) * 107.8},
    )
    ds.to_zarr(path, mode="w")
    rng = np.random.default_rng(0)
    import zarr

    group = zarr.open_group(str(path), mode="a")
    array = group.create_array(
        "velocities",
        shape=(1, n_frames, n, 3),
        chunks=(1, chunk, n, 3),
        dtype="float64",
        dimension_names=("traj", "velocity_time_fs", "atom", "xyz"),
    )
    for lo in range(0, n_frames, chunk):
        hi = min(n_frames, lo + chunk)
        array[0, lo:hi] = rng.normal(scale=1e-3, size=(hi - lo, n, 3))
    zarr.consolidate_metadata(str(path))


def _case(path: str, kind: str, queue) -> None:
    import xarray as xr

    from hts_mlff.analysis.sed import grid_kpoints, line_kpoints, spectral_energy_density

    ds = xr.open_zarr(path)
    cell = np.asarray(ds["final_cell"].values[0])
    started = time.perf_counter()
    if kind == "grid":
        conventional = cell / (np.linalg.norm(cell, axis=1)[:, None] / 5.33)
        primitive = 0.5 * np.array([[0, 1, 1], [1, 0, 1], [1, 1, 0]]) @ conventional
        k = grid_kpoints(cell, primitive)
    else:
        k = line_kpoints(cell, end_A=np.array([0.0, 0.0, 2 * np.pi / 5.33]))
    if kind == "in-memory":
        ds = ds.load()
    sed = spectral_energy_density(ds, k)
    seconds = time.perf_counter() - started
    queue.put((kind, len(k), sed.shape, seconds, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024))


def run_case(path: Path, kind: str) -> tuple:
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    process = ctx.Process(target=_case, args=(str(path), kind, queue))
    process.start()
    result = queue.get()
    process.join()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, nargs=3, default=[5, 5, 100])
    parser.add_argument("--grid-repeat", type=int, nargs=3, default=[10, 10, 10])
    parser.add_argument("--frames", type=int, default=1000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        line_store, grid_store = Path(tmp) / "line.zarr", Path(tmp) / "grid.zarr"
        write_store(line_store, tuple(args.repeat), args.frames)
        write_store(grid_store, tuple(args.grid_repeat), args.frames)
        n_line = 4 * int(np.prod(args.repeat))
        mb = n_line * args.frames * 3 * 8 / 2**20
        print(f"Γ–X: {n_line} atoms × {args.frames} frames ({mb:.0f} MB of velocities)")
        results = {kind: run_case(line_store, kind) for kind in ("lazy", "in-memory")}
        for kind, n_k, shape, seconds, rss in results.values():
            print(f"  {kind:9s}: {n_k} k, SED {shape}, {seconds:6.1f} s, peak RSS {rss:7.0f} MB")
        lazy, eager = results["lazy"], results["in-memory"]
        print(f"  lazy / in-memory: time × {lazy[3] / eager[3]:.2f}, peak memory × {lazy[4] / eager[4]:.2f}")
        n_grid = 4 * int(np.prod(args.grid_repeat))
        _, n_k, shape, seconds, rss = run_case(grid_store, "grid")
        print(f"full grid: {n_grid} atoms × {args.frames} frames, {n_k} k: {seconds:.1f} s, peak RSS {rss:.0f} MB")


if __name__ == "__main__":
    main()
