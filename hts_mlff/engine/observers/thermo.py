"""Thermodynamics at every sample: temperature, potential/kinetic/total energy, virial pressure, volume."""

from __future__ import annotations

import numpy as np

from hts_mlff.engine.forcefield import ForceOutput
from hts_mlff.engine.integrators import kinetic_energy_eV, pressure_bar, temperature_K
from hts_mlff.engine.observers.base import Observer, sample_rows
from hts_mlff.engine.state import BatchState


class ThermoObserver(Observer):
    """(n_systems, n_frames) float64 series: K, eV, eV, eV, bar, Å³."""

    quantities = (
        "kinetic_temperature_K",
        "potential_energy_eV",
        "kinetic_energy_eV",
        "total_energy_eV",
        "virial_pressure_bar",
        "volume_A3",
    )

    def start(self, state: BatchState, *, n_frames: int) -> None:
        self.buffers = {name: np.full((state.n_systems, n_frames), np.nan) for name in self.quantities}

    def record(self, state: BatchState, output: ForceOutput, *, frame: int | np.ndarray, alive: np.ndarray) -> None:
        rows, frames = sample_rows(frame, alive)
        ke = kinetic_energy_eV(state)
        energy = output.energy.detach()
        values = (
            temperature_K(state, ke),
            energy,
            ke,
            energy + ke,
            pressure_bar(state, stress=output.stress.detach(), kinetic_eV=ke),
            state.volume,
        )
        for name, value in zip(self.quantities, values, strict=True):
            self.buffers[name][rows, frames] = value.cpu().double().numpy()[rows]
