"""Cost of the heat-current observer per MD step: the same LJ crystal pack with and without it.

    python benchmarks/heat_flux_overhead.py [--repeat 6] [--replicas 4] [--steps 600]

One process, interleaved rounds; NVE production of an argon crystal at 40 K (thermo observer
always on), heat current sampled every 1, 2, 5 and 10 steps. Prints ms per step and the
overhead of the heat-flux observer relative to the run without it (target < 15 %).
"""

from __future__ import annotations

import argparse
import time

import torch
from ase.build import bulk

from hts_mlff.engine.md import MDProtocol, run_md
from hts_mlff.engine.observers import ThermoObserver
from hts_mlff.engine.observers.heat_flux import HeatFluxObserver
from hts_mlff.engine.state import state_from_atoms
from hts_mlff.forcefields import LennardJones


def seconds_per_step(n_replicas: int, repeat: int, steps: int, *, sample_every: int, heat_flux: bool) -> float:
    atoms = bulk("Ar", "fcc", a=5.33, cubic=True).repeat(repeat)
    state = state_from_atoms([atoms] * n_replicas, device=torch.device("cpu"), dtype=torch.float64)
    protocol = MDProtocol(
        timestep_fs=10.78,
        production_steps=steps,
        sample_every_steps=sample_every,
        ensemble="nve",
        equilibration_steps=0,
        initial_temperature_K=40.0,
    )
    observers = [ThermoObserver()] + ([HeatFluxObserver()] if heat_flux else [])
    started = time.perf_counter()
    run_md(
        state,
        LennardJones(0.010327, sigma_A=3.405, cutoff_A=8.5),
        protocol=protocol,
        temperature_K=torch.full((n_replicas,), 40.0),
        pressure_bar=torch.zeros(n_replicas),
        keys=list(range(n_replicas)),
        observers=observers,
    )
    return (time.perf_counter() - started) / steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=6, help="cubic cells per side (6: 864 atoms)")
    parser.add_argument("--replicas", type=int, default=4)
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    n_atoms = 4 * args.repeat**3 * args.replicas
    threads = torch.get_num_threads()
    print(f"{args.replicas} × {4 * args.repeat**3} atoms ({n_atoms}), {args.steps} steps, {threads} threads")
    for every in (1, 2, 5, 10):
        base, with_flux = [], []
        for _ in range(args.rounds):
            base.append(seconds_per_step(args.replicas, args.repeat, args.steps, sample_every=every, heat_flux=False))
            with_flux.append(
                seconds_per_step(args.replicas, args.repeat, args.steps, sample_every=every, heat_flux=True)
            )
        b, h = min(base), min(with_flux)
        print(
            f"sample every {every:2d} steps: {1e3 * b:7.2f} ms/step without, {1e3 * h:7.2f} ms/step with "
            f"heat flux → overhead {100 * (h / b - 1):5.1f} %"
        )


if __name__ == "__main__":
    main()
