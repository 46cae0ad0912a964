"""Hessian of a 256-atom crystal: all 6N displaced replicas as batched packs vs one ASE calculator
call per displacement (the seeds' path), in one process, LJ and the shipped GNN.

    python benchmarks/phonon_hessian.py [--repeat 4] [--serial-sample 96]

The serial path is timed on ``--serial-sample`` displaced configurations (every one of the
6N costs the same) and scaled to 6N; the batched path computes the whole Hessian. The seeds'
path for the GNN is the literal edge-by-edge calculator (``LiteralGNNCalculator``); our own
force field driven through ASE one call at a time is reported too. Prints atoms/s and ratios.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch
from ase.build import bulk

REPO = Path(__file__).resolve().parents[1]


def serial_seconds(atoms, calculator, *, step_A: float, sample: int) -> float:
    """Seconds for all 6N single-displacement force calls, from ``sample`` of them."""
    n = len(atoms)
    rng = np.random.default_rng(0)
    picks = rng.choice(6 * n, size=min(sample, 6 * n), replace=False)
    moved = atoms.copy()
    moved.calc = calculator
    started = time.perf_counter()
    for k in picks:
        atom, axis, sign = k // 6, (k // 2) % 3, 1.0 if k % 2 == 0 else -1.0
        moved.positions = atoms.positions
        moved.positions[atom, axis] += sign * step_A
        moved.get_forces()
    return (time.perf_counter() - started) * 6 * n / len(picks)


def main() -> None:
    from hts_mlff.forcefields import LennardJones, as_ase_calculator, load
    from hts_mlff.forcefields.gnn_reference import LiteralGNNCalculator
    from hts_mlff.statics import phonons

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=4, help="cubic cells per side (4: 256 atoms)")
    parser.add_argument("--serial-sample", type=int, default=96)
    parser.add_argument("--model", type=Path, default=REPO / "models" / "model-b-small.pt")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    atoms = bulk("Ar", "fcc", a=5.3, cubic=True).repeat(args.repeat)
    n, step = len(atoms), 3.405e-4
    gnn = load(args.model)
    cases = [
        ("LJ float64", LennardJones(0.010327, sigma_A=3.405, cutoff_A=8.5), torch.float64, None),
        ("GNN float32", gnn, torch.float32, LiteralGNNCalculator(load(args.model))),
    ]
    print(f"{n} atoms, {6 * n} displaced configurations, {args.threads} threads")
    for name, forcefield, dtype, seeds_calculator in cases:
        started = time.perf_counter()
        phonons.hessian(forcefield, atoms, step_A=step, dtype=dtype)
        batched = time.perf_counter() - started
        ours_serial = serial_seconds(
            atoms, as_ase_calculator(forcefield, dtype=dtype), step_A=step, sample=args.serial_sample
        )
        line = (
            f"{name}: batched {batched:.1f} s ({6 * n * n / batched:.3g} atoms/s); "
            f"ASE one call per displacement {ours_serial:.1f} s → ×{ours_serial / batched:.1f}"
        )
        if seeds_calculator is not None:
            seeds = serial_seconds(atoms, seeds_calculator, step_A=step, sample=max(8, args.serial_sample // 8))
            line += f"; seeds' literal calculator {seeds:.1f} s → ×{seeds / batched:.1f}"
        print(line, flush=True)


if __name__ == "__main__":
    main()
