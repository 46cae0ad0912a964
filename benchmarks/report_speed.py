"""Time ``hts-mlff report`` (the HTML page) over a synthetic 10⁴-trajectory campaign store, on 2 cores.

The store is the one of ``summary_speed.py`` (laid out by the real code path, filled without
MD: 2 force fields × 10 temperatures × ``--seeds`` seeds of 256 argon atoms, ``--snapshots``
frames each). The page is built from it lazily: open (with the per-chunk integrity check),
stability and structure summary, g(r) overlay, heatmap, campaign text. Prints each stage's
wall time and the process's peak resident memory against the store's size on disk.

    python benchmarks/report_speed.py [--seeds 500] [--snapshots 6] [--folder /tmp/hts-report-bench]
"""

from __future__ import annotations

import argparse
import resource
import time
from pathlib import Path

import dask
from summary_speed import build_store


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=500)
    parser.add_argument("--snapshots", type=int, default=6)
    parser.add_argument("--folder", type=Path, default=Path("/tmp/hts-report-bench"))
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()

    import hts_mlff
    from hts_mlff.report import build_report

    t0 = time.perf_counter()
    path = build_store(args.folder, n_seeds=args.seeds, n_snapshots=args.snapshots)
    on_disk = sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    print(f"built {path} ({on_disk / 2**20:.0f} MiB on disk) in {time.perf_counter() - t0:.1f} s")
    with dask.config.set(scheduler="threads", num_workers=args.workers):
        t0 = time.perf_counter()
        ds = hts_mlff.open_campaign(path)
        print(
            f"open_campaign (with the chunk-size check): {time.perf_counter() - t0:.2f} s, "
            f"{ds.sizes['traj']} trajectories"
        )
        t0 = time.perf_counter()
        page = build_report(path, output=args.folder / "report", reference="lj")
        wall = time.perf_counter() - t0
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    size_kib = page.stat().st_size / 1024
    print(f"report: {wall:.1f} s → {page} ({size_kib:.0f} KiB); peak RSS {peak_mib:.0f} MiB")
    print(f"peak RSS / store on disk: {peak_mib / (on_disk / 2**20):.2f}")


if __name__ == "__main__":
    main()
