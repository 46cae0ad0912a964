"""Shared by the observer-overhead benchmarks: time an LJ argon pack with and without one
observer, interleaved round by round in one process, and print the overhead per sampling
interval (``heat_flux_overhead.py``, ``interface_overhead.py``)."""

from __future__ import annotations

import time
from collections.abc import Callable

import torch
from ase import Atoms

from hts_mlff.engine.md import MDProtocol, run_md
from hts_mlff.engine.observers import ThermoObserver
from hts_mlff.engine.state import state_from_atoms
from hts_mlff.forcefields import LennardJones


def seconds_per_lj_step(
    atoms: Atoms, n_replicas: int, protocol: MDProtocol, *, temperature_K: float, extra_observers: list
) -> float:
    """Wall seconds per step of ``n_replicas`` copies of ``atoms`` (float64, CPU, thermo observer on)."""
    state = state_from_atoms([atoms] * n_replicas, device=torch.device("cpu"), dtype=torch.float64)
    started = time.perf_counter()
    run_md(
        state,
        LennardJones(0.010327, sigma_A=3.405, cutoff_A=8.5),
        protocol=protocol,
        temperature_K=torch.full((n_replicas,), temperature_K),
        pressure_bar=torch.zeros(n_replicas),
        keys=list(range(n_replicas)),
        observers=[ThermoObserver(), *extra_observers],
    )
    return (time.perf_counter() - started) / protocol.production_steps


def print_overheads(name: str, intervals: tuple[int, ...], rounds: int, seconds: Callable[[int, bool], float]) -> None:
    """For each sampling interval, the best of ``rounds`` interleaved timings ``seconds(every, on)``
    without and with the observer, and the overhead in %."""
    for every in intervals:
        without, with_it = [], []
        for _ in range(rounds):
            without.append(seconds(every, False))
            with_it.append(seconds(every, True))
        b, t = min(without), min(with_it)
        print(
            f"sample every {every:3d} steps: {1e3 * b:7.2f} ms/step without, {1e3 * t:7.2f} ms/step with "
            f"the {name} → overhead {100 * (t / b - 1):5.1f} %"
        )
