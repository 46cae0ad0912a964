"""GNN MD throughput: 64 × 256-atom argon replicas in one pack vs the seeds' path.

The seeds' path runs one trajectory at a time: an ASE ``Langevin`` integrator calling a
GNN calculator that rebuilds the full directed graph at every step and evaluates
eq. 2–4 edge by edge (:class:`hts_mlff.forcefields.gnn_reference.LiteralGNNCalculator`).
Ours runs all replicas in one batched pack (``run_md``: Verlet list with skin, half pair
list, tabulated radial terms). Same weights, same machine, same process; the model is the
shipped ``models/model-b-small.pt`` (the seeds' h = 128, n = 4, r_c = 7.5 Å). Also shown:
our force field driven by ASE one trajectory at a time (``as_ase_calculator``), which
separates the gain of batching from that of the kernels.

Prints atom-steps/s and ratios (best of ``--repeats``).

    python benchmarks/gnn_md_throughput.py [--replicas 64] [--steps 10] [--device cpu|cuda]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch
from ase.build import bulk
from md_throughput import ase_langevin_rate

REPO = Path(__file__).resolve().parents[1]
LATTICE_A = (4 / 0.02148) ** (1 / 3)
TIMESTEP_FS, TEMPERATURE_K = 10.78, 100.0


def argon(seed: int):
    atoms = bulk("Ar", "fcc", a=LATTICE_A, cubic=True).repeat(4)
    atoms.rattle(0.05, seed=seed)
    return atoms


def rate_ase(calc, *, steps: int) -> float:
    """atom-steps/s of one 256-atom trajectory driven by ASE Langevin."""
    return ase_langevin_rate(argon(0), calc, steps)


def rate_pack(forcefield, *, replicas: int, steps: int, device: torch.device) -> float:
    from hts_mlff.engine import MDProtocol, run_md
    from hts_mlff.engine.state import state_from_atoms

    def run(n_steps: int) -> float:
        state = state_from_atoms([argon(k) for k in range(replicas)], device=device, dtype=torch.float32)
        protocol = MDProtocol(
            timestep_fs=TIMESTEP_FS, production_steps=n_steps, sample_every_steps=n_steps, ensemble="nvt"
        )
        if device.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        result = run_md(
            state,
            forcefield,
            protocol=protocol,
            temperature_K=torch.full((replicas,), TEMPERATURE_K),
            pressure_bar=torch.zeros(replicas),
            keys=list(range(replicas)),
        )
        if device.type == "cuda":
            torch.cuda.synchronize()
        return result.atom_steps / (time.perf_counter() - t0)

    run(2)  # warm-up (table, allocator)
    return run(steps)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=str(REPO / "models" / "model-b-small.pt"))
    parser.add_argument("--replicas", type=int, default=64)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--ase-steps", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    from hts_mlff.forcefields import as_ase_calculator, load
    from hts_mlff.forcefields.gnn_reference import LiteralGNNCalculator

    device = torch.device(args.device)
    forcefield = load(args.model)
    print(f"model {args.model}: {forcefield.gnn_config}")
    print(f"device {device}, torch threads {torch.get_num_threads()}")
    cpu_ff = load(args.model)
    seeds = rate_ase(LiteralGNNCalculator(cpu_ff), steps=args.ase_steps)
    print(f"seeds' path (ASE Langevin + literal GNN, 1 x 256, cpu): {seeds:10.4g} atom-steps/s   1.0x")
    ours_ase = rate_ase(as_ase_calculator(cpu_ff, dtype=torch.float32), steps=args.ase_steps)
    print(
        f"ASE Langevin + hts_mlff GNN calculator (1 x 256, cpu): {ours_ase:10.4g} atom-steps/s {ours_ase / seeds:5.1f}x"
    )
    forcefield.to(device)
    pack = max(
        rate_pack(forcefield, replicas=args.replicas, steps=args.steps, device=device) for _ in range(args.repeats)
    )
    print(f"hts_mlff pack ({args.replicas} x 256, {device}): {pack:10.4g} atom-steps/s {pack / seeds:5.1f}x")


if __name__ == "__main__":
    main()
