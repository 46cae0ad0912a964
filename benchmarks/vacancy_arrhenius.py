"""Vacancy-rate pipeline: MD throughput of the Arrhenius campaign, and the lazy aggregation.

1. **Campaign** (``--campaign``, default the laptop-scale ``campaigns/ar-vacancy-arrhenius-small.yaml``):
   runs it on the embedded LocalCluster into a fresh store and prints wall time and atom-steps/s,
   with the ratio against ASE's Langevin driving asap3's LJ (or ASE's own LJ when asap3 is
   missing) on the same vacancy crystal, in this process.
2. **Aggregation**: synthetic stores laid out by the real code path (campaign → plan →
   ``prepare_store``) for 10³, 10⁴, 10⁵ trajectories (2 force fields × 5 temperatures ×
   windows, ``--samples`` vacancy sites each), filled without MD with hops drawn from a Poisson
   process at r = ν₀ exp(−E_b/k_B T) (E_b = 25 meV, ν₀ = 2 THz), then timed, lazily over the
   store: ``window_jumps`` → ``jump_rates`` (1000 bootstrap resamples) → ``rate_arrhenius``;
   the fitted E_b is printed next to the truth.

    python benchmarks/vacancy_arrhenius.py [--sizes 1000 10000 100000] [--skip-campaign]
"""

from __future__ import annotations

import argparse
import shutil
import textwrap
import time
from pathlib import Path

import dask
import numpy as np

REPO = Path(__file__).resolve().parents[1]
BARRIER_EV, NU0_THZ = 0.025, 2.0
TEMPERATURES_K = [35.0, 40.0, 45.0, 50.0, 60.0]
SAMPLE_FS = 1078.0

SYNTHETIC = textwrap.dedent(
    """\
    name: vacancy-bench
    store: vacancy-bench.zarr
    systems:
      ar255: {{kind: fcc, element: Ar, lattice_A: 5.6, repeat: [4, 4, 4], vacancies: [0]}}
    forcefields:
      lj: {{kind: lennard_jones, epsilon_eV: 0.010327, sigma_A: 3.405, cutoff_A: 8.5}}
      other: {{kind: lennard_jones, epsilon_eV: 0.0095, sigma_A: 3.405, cutoff_A: 8.5}}
    protocol: {{timestep_fs: 10.78, production_steps: {steps}, sample_every_steps: 100}}
    sweep: {{temperature_K: {temperatures}, pressure_bar: [-2500], window: {windows}}}
    analyses: [thermo, vacancy]
    execution: {{pack_size: 500}}
    """
)


def run_campaign(path: Path, folder: Path) -> None:
    import hts_mlff
    from hts_mlff.spec.load import load_campaign

    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    copy = folder / path.name
    text = path.read_text().replace("store: ../runs/", "store: ./")
    text = text.replace("../models/", f"{REPO}/models/")
    copy.write_text(text)
    loaded = load_campaign(copy)
    started = time.perf_counter()
    report = hts_mlff.run_campaign(loaded)
    wall = time.perf_counter() - started
    rate = report.atom_steps / wall
    print(f"campaign {loaded.spec.name}: {report.n_run} trajectories, {report.atom_steps:.3g} atom-steps")
    print(f"  wall {wall:.1f} s (cluster start and store included), {rate:.3g} atom-steps/s overall")
    md_wall = sum(p.get("md_wall_s", 0.0) for p in report.packs)
    md_rate = report.atom_steps / md_wall if md_wall else float("nan")
    print(f"  inside the packs: {md_rate:.3g} atom-steps/s (MD, tracking and guard)")
    peer, name = peer_rate(loaded)
    print(
        f"  peer {name}: {peer:.3g} atom-steps/s on one replica → ratio ours/peer {md_rate / peer:.2f} (packs), "
        f"{rate / peer:.2f} (overall)"
    )


def peer_rate(loaded) -> tuple[float, str]:
    """ASE Langevin with asap3's LJ (or ASE's) on the campaign's first system, atom-steps/s."""
    import sys

    sys.path.insert(0, str(REPO / "benchmarks"))
    from md_throughput import ase_langevin_rate

    from hts_mlff.systems import build_system

    name = next(iter(loaded.spec.systems))
    atoms = build_system(loaded.spec.systems[name].model_copy(update={"relax_lattice_with": None}), base_dir=REPO)
    lj = next(ff for ff in loaded.spec.forcefields.values() if ff.kind == "lennard_jones")
    try:
        from asap3 import LennardJones as AsapLJ

        calc = AsapLJ([18], [lj.epsilon_eV], [lj.sigma_A], rCut=lj.cutoff_A, modified=True)
        return ase_langevin_rate(atoms.copy(), calc, 200), "ASE Langevin + asap3 LJ"
    except Exception as exc:  # not installed, or a cell thinner than 2 r_c (asap3 refuses those)
        from ase.calculators.lj import LennardJones

        calc = LennardJones(epsilon=lj.epsilon_eV, sigma=lj.sigma_A, rc=lj.cutoff_A, smooth=False)
        why = "asap3 missing" if isinstance(exc, ImportError) else "asap3 refuses this cell"
        return ase_langevin_rate(atoms.copy(), calc, 200), f"ASE Langevin + ASE LJ ({why})"


def build_store(folder: Path, *, n_traj: int, n_samples: int) -> Path:
    from hts_mlff.schedule.runner import pending_jobs, prepare_store
    from hts_mlff.spec.load import load_campaign
    from hts_mlff.tasks import expand
    from hts_mlff.units import BOLTZMANN_EV_PER_K

    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    windows = max(1, n_traj // (2 * len(TEMPERATURES_K)))
    path = folder / "vacancy-bench.yaml"
    path.write_text(
        SYNTHETIC.format(steps=100 * (n_samples - 1), temperatures=TEMPERATURES_K, windows=list(range(windows)))
    )
    loaded = load_campaign(path)
    plan = expand(loaded.spec, base_dir=loaded.base_dir)
    store = prepare_store(loaded, plan)
    rng = np.random.default_rng(0)
    for job in pending_jobs(loaded, plan, store, threads=None):
        n = len(job.tasks)
        temps = np.array([t["temperature_K"] for t in job.tasks])
        rate_per_sample = NU0_THZ * np.exp(-BARRIER_EV / (BOLTZMANN_EV_PER_K * temps)) * SAMPLE_FS / 1000.0
        hops = rng.poisson(rate_per_sample[:, None], size=(n, n_samples))
        hops[:, 0] = 0
        sites = (np.cumsum(hops, axis=1) * 7) % 256  # a new site at every hop
        store.write_pack(
            slot_start=job.slot_start,
            arrays={
                "vacancy_site": sites.astype(np.int32),
                "n_vacant": np.ones((n, n_samples), dtype=np.int32),
                "n_atoms": np.full(n, 255, dtype=np.int32),
                "failure_step": np.full(n, -1, dtype=np.int64),
                "failure_reason": np.zeros(n, dtype=np.int8),
                "kinetic_temperature_K": np.repeat(temps[:, None], n_samples, axis=1),
            },
        )
        for task in job.tasks:
            store.mark_done(task["task_id"], {"task_id": task["task_id"], "pack": job.pack_index, "failure_step": -1})
    store.consolidate()
    return store.path


def time_aggregation(path: Path, *, workers: int) -> None:
    import hts_mlff
    from hts_mlff.analysis.vacancy import jump_rates, rate_arrhenius, window_jumps

    with dask.config.set(scheduler="threads", num_workers=workers):
        t0 = time.perf_counter()
        ds = hts_mlff.open_campaign(path)
        t_open = time.perf_counter() - t0
        t0 = time.perf_counter()
        windows = window_jumps(ds).compute()
        t_windows = time.perf_counter() - t0
        t0 = time.perf_counter()
        rates = jump_rates(windows, n_bootstrap=1000)
        t_rates = time.perf_counter() - t0
        t0 = time.perf_counter()
        fits = rate_arrhenius(rates)
        t_fit = time.perf_counter() - t0
    barrier = fits["activation_energy_eV"].sel(forcefield="lj").values.ravel()[0]
    total = t_open + t_windows + t_rates + t_fit
    print(
        f"{ds.sizes['traj']:>7} trajectories × {ds.sizes[ds['vacancy_site'].dims[-1]]} samples: "
        f"open {t_open:.2f} s, window_jumps {t_windows:.2f} s, jump_rates {t_rates:.2f} s, "
        f"rate_arrhenius {t_fit:.3f} s, total {total:.2f} s — E_b {barrier * 1e3:.2f} meV (true {BARRIER_EV * 1e3:g})"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--campaign", type=Path, default=REPO / "campaigns" / "ar-vacancy-arrhenius-small.yaml")
    parser.add_argument("--skip-campaign", action="store_true")
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000, 100000])
    parser.add_argument("--samples", type=int, default=200)
    parser.add_argument("--folder", type=Path, default=Path("/tmp/hts-vacancy-bench"))
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    if not args.skip_campaign:
        run_campaign(args.campaign, args.folder / "campaign")
    for size in args.sizes:
        t0 = time.perf_counter()
        path = build_store(args.folder / f"synthetic-{size}", n_traj=size, n_samples=args.samples)
        print(f"built a {size}-trajectory store in {time.perf_counter() - t0:.1f} s")
        time_aggregation(path, workers=args.workers)


if __name__ == "__main__":
    main()
