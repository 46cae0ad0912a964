r"""Adaptive sampling of vacancy campaigns: windows go where the Arrhenius barrier is least certain.

A campaign with an ``adaptive`` section runs in rounds. Each round runs what is pending
(:func:`hts_mlff.schedule.runner.run_campaign`), reads the store lazily, fits every
(force field, pressure) by Poisson likelihood (:func:`hts_mlff.analysis.vacancy.rate_arrhenius`)
and compares the width of its 95 % E_b interval with ``target_barrier_interval_eV``. Groups
still too wide get ``windows_per_round`` new windows at the temperature where one more unit of
exposure adds the most information on E_b:

.. math:: I_{EE} \propto \sum_i \mu_i (x_i - \bar x)^2, \qquad
          \frac{\partial I_{EE}}{\partial E_i} \approx r_i (x_i - \bar x)^2,

with x = 1/k_BT, μ_i = r_i E_i the expected counts, x̄ their μ-weighted mean and r_i the fitted
rates (the estimator's own variance: E_b's is 1/I_EE). Temperatures far from the centre of the
data that still produce events win; a temperature with no events and a tiny rate does not. Before
the data identify E_b, rates smoothed as (k + ½)/E are used instead of the fit.

Every added window is an ordinary task (:func:`hts_mlff.tasks.task_table`: its id follows from
its sweep point), appended to the store (:func:`hts_mlff.schedule.extend.append_tasks`, logged as
"adaptive round r"), so a stopped adaptive run resumes: rounds already done are read from the
store's log. It stops at the target, after ``max_rounds`` rounds, or before a round would exceed
``max_atom_steps`` in total.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from hts_mlff.analysis.poisson import _poisson_fit
from hts_mlff.units import BOLTZMANN_EV_PER_K


def allocation_scores(counts: np.ndarray, exposures_ps: np.ndarray, temperatures_K: np.ndarray) -> np.ndarray:
    """Information on E_b gained per unit of exposure at each temperature (≥ 0; see the module
    docstring). Shapes (n_T,); exposures in ps."""
    counts = np.asarray(counts, dtype=float)
    exposures = np.asarray(exposures_ps, dtype=float)
    temperatures = np.asarray(temperatures_K, dtype=float)
    x = 1.0 / (BOLTZMANN_EV_PER_K * temperatures)
    if counts.sum() == 0:
        return (temperatures == temperatures.max()).astype(float)  # no event yet: where they come first
    fit = _poisson_fit(counts, exposures, temperatures, extrapolate_to_K=300.0, confidence=0.95)
    if np.isfinite(fit[0]) and np.isfinite(fit[4]):
        rates = fit[4] * np.exp(-fit[0] * x)
    else:
        rates = (counts + 0.5) / np.where(exposures > 0, exposures, np.inf)
    mu = rates * exposures
    centre = float((mu * x).sum() / mu.sum()) if mu.sum() > 0 else float(x.mean())
    return rates * (x - centre) ** 2


@dataclass
class AdaptiveRound:
    """One round: the barrier interval width per group and what was added after it."""

    index: int
    widths_eV: dict[tuple[str, float], float]
    atom_steps: float
    added: dict[tuple[str, float], tuple[float, int]] = field(default_factory=dict)  # group → (T, windows)


@dataclass
class AdaptiveReport:
    rounds: list[AdaptiveRound]
    stopped_because: str  # "target", "rounds" or "budget"


def _done_atom_steps(store: Any, total_steps: int) -> float:
    manifest = store.manifest()["columns"]
    done = store.done_markers()
    return float(
        sum(n for t, n in zip(manifest["task_id"], manifest["n_atoms"], strict=True) if t in done) * total_steps
    )


def run_adaptive(
    loaded: Any,
    *,
    client: Any | None = None,
    on_event: Callable[[str, dict[str, Any]], None] | None = None,
    on_round: Callable[[AdaptiveRound], None] | None = None,
    allow_code: bool = False,
) -> AdaptiveReport:
    """Run a campaign's adaptive rounds (see the module docstring); resumable."""
    from hts_mlff.analysis.vacancy import jump_rates, rate_arrhenius, window_jumps
    from hts_mlff.schedule.extend import append_tasks
    from hts_mlff.schedule.runner import run_campaign
    from hts_mlff.store.layout import CampaignStore
    from hts_mlff.store.lock import run_lock
    from hts_mlff.store.reader import open_campaign
    from hts_mlff.tasks import expand, task_table

    campaign, settings = loaded.spec, loaded.spec.adaptive
    plan = expand(campaign, base_dir=loaded.base_dir)
    sweep_ids = set(plan.tasks.task_id.tolist())
    rounds: list[AdaptiveRound] = []
    while True:
        store = CampaignStore(loaded.store_path)
        extra = frozenset(set(store.manifest()["columns"]["task_id"]) - sweep_ids) if store.exists() else frozenset()
        run_campaign(loaded, client=client, on_event=on_event, allow_code=allow_code, extra_task_ids=extra)
        log = store.attrs().get("extensions", [])
        done_rounds = len({e["reason"] for e in log if str(e.get("reason", "")).startswith("adaptive")})
        ds = open_campaign(store.path)
        rates = jump_rates(window_jumps(ds).compute(), n_bootstrap=10)
        fits = rate_arrhenius(rates)
        widths = (fits["activation_energy_high_eV"] - fits["activation_energy_low_eV"]).to_series()
        this = AdaptiveRound(
            index=done_rounds,
            widths_eV={(str(f), float(p)): float(w) for (f, p), w in widths.items()},
            atom_steps=_done_atom_steps(store, plan.total_steps),
        )
        rounds.append(this)
        target = settings.target_barrier_interval_eV
        wide = [g for g, w in this.widths_eV.items() if not (np.isfinite(w) and w <= target)]
        if not wide:
            return _finish(rounds, "target", on_round)
        if done_rounds >= settings.max_rounds:
            return _finish(rounds, "rounds", on_round)
        points = []
        for forcefield, pressure in wide:
            group = rates.sel(forcefield=forcefield, pressure_bar=pressure)
            temps = group["temperature_K"].values
            scores = allocation_scores(group["n_windows_with_jump"].values, group["exposure_mle_ps"].values, temps)
            temperature = float(temps[int(np.nanargmax(scores))])
            this.added[forcefield, pressure] = (temperature, settings.windows_per_round)
            points.append((forcefield, temperature, pressure))
        columns = _new_windows(store.manifest()["columns"], plan, points, settings.windows_per_round)
        table = task_table(campaign, columns, base_dir=loaded.base_dir)
        cost = float(table.n_atoms.sum()) * plan.total_steps
        if settings.max_atom_steps is not None and this.atom_steps + cost > settings.max_atom_steps:
            return _finish(rounds, "budget", on_round)
        with run_lock(store.path):
            append_tasks(store, campaign, table, campaign_text=loaded.text, reason=f"adaptive round {done_rounds + 1}")
        if on_round is not None:
            on_round(this)


def _new_windows(
    manifest: dict[str, list[Any]], plan: Any, points: list[tuple[str, float, float]], n: int
) -> dict[str, np.ndarray]:
    """Columns of ``n`` new windows at each (force field, T, P) of ``points``, for every system the
    force field runs and the campaign's first seed, numbered after the windows already stored."""
    axes = ("forcefield", "system", "temperature_K", "pressure_bar", "seed", "window")
    seed = int(plan.campaign.sweep.seed[0])
    stored = list(zip(*(manifest[a] for a in axes), strict=True))
    columns: dict[str, list[Any]] = {a: [] for a in axes}
    pairs = set(zip(plan.tasks.forcefield, plan.tasks.system, strict=True))
    for forcefield, temperature, pressure in points:
        for system in sorted(str(s) for f, s in pairs if f == forcefield):
            here = (forcefield, system, temperature, pressure, seed)
            used = [w for f, s, t, p, sd, w in stored if (f, s, float(t), float(p), int(sd)) == here]
            start = max(used, default=-1) + 1
            for window in range(start, start + n):
                for axis, value in zip(axes, (*here, window), strict=True):
                    columns[axis].append(value)
    return {a: np.asarray(v, dtype=object) for a, v in columns.items()}


def _finish(rounds: list[AdaptiveRound], reason: str, on_round: Callable | None) -> AdaptiveReport:
    if on_round is not None:
        on_round(rounds[-1])
    return AdaptiveReport(rounds=rounds, stopped_because=reason)
