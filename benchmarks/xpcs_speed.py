"""g₂ over a stored 4,000-atom × 10⁴-frame liquid trajectory: wall time and peak memory, lazily from Zarr.

    python benchmarks/xpcs_speed.py [--atoms 4000] [--frames 10000] [--vectors 64] [--workers 2]

Writes a store-shaped Zarr (unwrapped positions float64 in the campaign store's chunking: ≤ 64 MB
per chunk along time; a fixed cubic cell of liquid-argon density; Brownian positions), then, each
in a fresh process: (a) the seeds' shell 1.844 ± 0.029 Å⁻¹: density modes read chunk by chunk
(dask, ``--workers`` threads), g₂ and its fit, the optical contrast for 24 pulse widths — as
``hts-mlff xpcs`` does; (b) the same with every position loaded first (the in-memory way), the
peer; (c) the self part F_s on 256 tracked atoms and 12 vectors. Prints seconds, peak RSS and ratios.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import resource
import tempfile
import time
from pathlib import Path

import numpy as np

DENSITY_PER_A3 = 0.02148
DT_FS = 107.8


def write_store(path: Path, n_atoms: int, n_frames: int) -> None:
    import xarray as xr
    import zarr

    box = (n_atoms / DENSITY_PER_A3) ** (1 / 3)
    chunk = max(1, (64 * 2**20) // (n_atoms * 3 * 8))
    ds = xr.Dataset(
        {
            "cells": (
                ("traj", "position_time_fs", "cell_vector", "xyz"),
                np.broadcast_to(np.eye(3) * box, (1, n_frames, 3, 3)).copy(),
            ),
            "n_atoms": ("traj", np.array([n_atoms])),
        },
        coords={"position_time_fs": np.arange(n_frames) * DT_FS},
    )
    ds.to_zarr(path, mode="w")
    group = zarr.open_group(str(path), mode="a")
    array = group.create_array(
        "positions",
        shape=(1, n_frames, n_atoms, 3),
        chunks=(1, chunk, n_atoms, 3),
        dtype="float64",
        dimension_names=("traj", "position_time_fs", "atom", "xyz"),
    )
    rng = np.random.default_rng(0)
    current = rng.uniform(0, box, (n_atoms, 3))
    step = np.sqrt(2 * 2e-4 * DT_FS)  # D = 2·10⁻⁴ Å²/fs, liquid argon at 100 K
    for lo in range(0, n_frames, chunk):
        hi = min(n_frames, lo + chunk)
        block = current + np.cumsum(rng.normal(0, step, (hi - lo, n_atoms, 3)), axis=0)
        array[0, lo:hi] = block
        current = block[-1]
    zarr.consolidate_metadata(str(path))


def _case(path: str, kind: str, vectors: int, workers: int, queue) -> None:
    import dask
    import xarray as xr

    from hts_mlff.analysis.scattering import density_modes, self_intermediate_scattering
    from hts_mlff.analysis.xpcs import fit_decay_rate, g2, optical_contrast

    ds = xr.open_zarr(path)
    started = time.perf_counter()
    with dask.config.set(scheduler="threads", num_workers=workers):
        if kind == "self":
            fs = self_intermediate_scattering(ds, q_per_A=1.844, width_per_A=0.058, max_atoms=256, max_lag_fs=20000)
            shape = fs["F_s"].shape
        else:
            if kind == "in-memory":
                ds = ds.load()
            modes = density_modes(ds, q_per_A=1.844, width_per_A=0.058, max_vectors=vectors)
            modes["rho"] = modes["rho"].compute()
            curve = g2(modes, max_lag_fs=20000)
            fit_decay_rate(curve)
            n_t = modes.sizes["position_time_fs"]
            optical_contrast(modes, pulse_frames=np.unique(np.geomspace(1, n_t // 4, 24).astype(int)))
            shape = curve.shape
    seconds = time.perf_counter() - started
    queue.put((kind, shape, seconds, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024))


def run_case(path: Path, kind: str, vectors: int, workers: int) -> tuple:
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    process = ctx.Process(target=_case, args=(str(path), kind, vectors, workers, queue))
    process.start()
    result = queue.get()
    process.join()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--atoms", type=int, default=4000)
    parser.add_argument("--frames", type=int, default=10000)
    parser.add_argument("--vectors", type=int, default=64)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--folder", type=Path, default=None)
    args = parser.parse_args()
    folder = args.folder or Path(tempfile.mkdtemp(prefix="hts-xpcs-bench-"))
    path = folder / "positions.zarr"
    started = time.perf_counter()
    write_store(path, args.atoms, args.frames)
    on_disk = sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) / 2**20
    positions_mib = args.atoms * args.frames * 3 * 8 / 2**20
    print(
        f"store: {args.atoms} atoms × {args.frames} frames, positions {positions_mib:.0f} MiB "
        f"({on_disk:.0f} MiB on disk), written in {time.perf_counter() - started:.0f} s"
    )
    results = {kind: run_case(path, kind, args.vectors, args.workers) for kind in ("lazy", "in-memory", "self")}
    for kind, shape, seconds, rss in results.values():
        print(f"{kind:>10}: {seconds:7.1f} s, peak RSS {rss:7.0f} MiB, output {shape}")
    lazy, eager = results["lazy"], results["in-memory"]
    print(f"lazy / in-memory: time × {lazy[2] / eager[2]:.2f}, peak memory × {lazy[3] / eager[3]:.2f}")


if __name__ == "__main__":
    main()
