"""Command line: ``hts-mlff validate | plan | run | status | train | parity | phonons | barrier |
vacancy | thermal | report | schema``."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

app = typer.Typer(add_completion=False, no_args_is_help=True, help="High-throughput MLFF screening by batched MD.")
console = Console(soft_wrap=True)
err_console = Console(stderr=True, soft_wrap=True, highlight=False)

CampaignFile = Annotated[Path, typer.Argument(help="Campaign YAML file.")]
StorePath = Annotated[Path, typer.Argument(help="Campaign Zarr store.")]


def _load(path: Path):
    from hts_mlff.spec.load import CampaignError, load_campaign

    try:
        loaded = load_campaign(path)
    except FileNotFoundError:
        err_console.print(f"[red]error[/red]: {path}: no such campaign file")
        raise typer.Exit(2) from None
    except CampaignError as exc:
        for problem in exc.problems:
            style = "yellow" if problem.warning else "red"
            err_console.print(f"[{style}]{problem}[/{style}]", highlight=False, soft_wrap=True)
        n = sum(not p.warning for p in exc.problems)
        err_console.print(f"{path}: {n} error(s); nothing was run or written.")
        raise typer.Exit(2) from None
    for warning in loaded.warnings:
        err_console.print(f"[yellow]{warning}[/yellow]", highlight=False, soft_wrap=True)
    return loaded


def _human_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024:
            return f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} PiB"


def _store_with_spec(store: Path, *, system: str | None) -> tuple[Any, dict, Any, list[str]]:
    """(dataset, store attributes, campaign spec, systems) of a store; ValueError for a --system
    it does not hold. The spec is data (parameters), never code to import."""
    from hts_mlff.spec.model import Campaign
    from hts_mlff.store.layout import CampaignStore
    from hts_mlff.store.reader import open_campaign

    ds = open_campaign(store)
    attrs = CampaignStore(store).attrs()
    spec = Campaign.model_validate(attrs["spec"])
    systems = sorted(set(ds["system"].values.tolist()))
    if system is not None and system not in systems:
        raise ValueError(f"--system {system!r}: the store holds {systems}")
    return ds, attrs, spec, systems


@app.command()
def validate(campaign: CampaignFile) -> None:
    """Check a campaign file; report every problem with file:line."""
    loaded = _load(campaign)
    console.print(f"{campaign}: valid campaign {loaded.spec.name!r}")


@app.command()
def plan(campaign: CampaignFile) -> None:
    """Print what a campaign expands to, without running anything."""
    from hts_mlff.tasks import expand

    loaded = _load(campaign)
    t0 = time.perf_counter()
    p = expand(loaded.spec, base_dir=loaded.base_dir)
    elapsed = time.perf_counter() - t0
    table = Table(title=f"campaign {loaded.spec.name!r}", show_header=False)
    table.add_row("tasks (trajectories)", f"{len(p.tasks):,}")
    table.add_row("packs", f"{len(p.packs):,} (chunk {p.chunk_size} trajectories)")
    table.add_row("steps per task", f"{p.total_steps:,}")
    table.add_row("total atom-steps", f"{p.atom_steps:.3e}")
    table.add_row("frames per task", f"{p.n_frames:,}")
    table.add_row("estimated store size", _human_bytes(p.estimated_store_bytes) + " (uncompressed)")
    table.add_row("store", str(loaded.store_path))
    for axis in ("forcefield", "system", "temperature_K", "pressure_bar", "seed", "window"):
        values = sorted(set(getattr(p.tasks, axis).tolist()), key=str)
        shown = ", ".join(map(str, values[:8])) + (" …" if len(values) > 8 else "")
        table.add_row(f"  {axis}", f"{len(values)}: {shown}")
    console.print(table)
    console.print(f"expanded in {elapsed * 1e3:.0f} ms")


@app.command()
def run(
    campaign: CampaignFile,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
    detach: Annotated[
        bool, typer.Option("--detach", help="Run the coordinator in the background; it survives logout.")
    ] = False,
) -> None:
    """Run a campaign on its cluster (an embedded LocalCluster by default); resumable."""
    from hts_mlff.schedule.clusters import ClusterError
    from hts_mlff.schedule.runner import run_campaign
    from hts_mlff.store.layout import StoreError

    loaded = _load(campaign)
    if detach:
        _detach(loaded)
        return
    progress = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("trajectories"),
        TextColumn("{task.fields[rate]}"),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        console=console,
        disable=quiet,
    )
    state: dict[str, Any] = {"start": time.perf_counter(), "atom_steps": 0}

    def on_event(kind: str, info: dict[str, Any]) -> None:
        if kind == "waiting":
            console.print("waiting for the first worker (batch jobs may be queued) …")
        elif kind == "start":
            console.print(f"dashboard: {info['dashboard']}")
            console.print(
                f"{info['n_tasks']} tasks, {info['n_tasks'] - info['n_pending']} already done, "
                f"{info['n_pending']} to run in {info['n_packs']} packs"
            )
            state["task"] = progress.add_task(loaded.spec.name, total=info["n_pending"], rate="")
            state["start"] = time.perf_counter()
        elif kind == "pack_error":
            progress.console.print(
                f"[red]pack {info['pack']} failed[/red] ({info['n_tasks']} tasks left missing): {info['error']}",
                highlight=False,
            )
            progress.update(state["task"], advance=info["n_tasks"])
        elif kind == "pack":
            state["atom_steps"] += info["atom_steps"]
            rate = state["atom_steps"] / max(time.perf_counter() - state["start"], 1e-9)
            progress.update(state["task"], advance=info["n_tasks"], rate=f"{rate:.3g} atom-steps/s")

    try:
        with progress:
            report = run_campaign(loaded, on_event=on_event)
    except (StoreError, ClusterError) as exc:
        err_console.print(f"[red]error[/red]: {exc}")
        raise typer.Exit(2) from None
    except KeyboardInterrupt:
        err_console.print("interrupted: completed tasks are kept; run again to finish the rest")
        raise typer.Exit(130) from None
    console.print(
        f"done: {report.n_run} run, {report.n_skipped} skipped, {report.n_failed} failed "
        f"in {report.wall_s:.1f} s → {report.store_path}"
    )
    if report.pack_errors:
        n = sum(e["n_tasks"] for e in report.pack_errors)
        err_console.print(
            f"[red]{len(report.pack_errors)} pack(s) raised an error; their {n} task(s) are not done[/red] "
            "(results of the other packs are kept; fix the cause and run again to finish them):"
        )
        for error in report.pack_errors:
            err_console.print(f"  pack {error['pack']}: {error['error']}", highlight=False)
        raise typer.Exit(1)


def _detach(loaded) -> None:
    """Start ``hts-mlff run`` in a new session with its output in a log file beside the store."""
    import subprocess
    import sys

    log = loaded.store_path.with_name(loaded.store_path.name + ".log")
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "hts_mlff.cli", "run", "--quiet", str(loaded.path)],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    console.print(f"coordinator running in the background (pid {proc.pid}); log: {log}")
    console.print(f"follow it with: hts-mlff status {loaded.store_path}")


@app.command()
def status(store: StorePath) -> None:
    """Done / failed / missing trajectories per sweep axis, from the store alone."""
    from hts_mlff.store.layout import CampaignStore, StoreError
    from hts_mlff.store.reader import status_table

    try:
        tables = status_table(store)
        attrs = CampaignStore(store).attrs()
    except StoreError as exc:
        err_console.print(f"[red]error[/red]: {exc}")
        raise typer.Exit(2) from None
    totals = next(iter(tables.values())).sum()
    console.print(
        f"campaign {attrs['campaign']!r}: {int(totals['done'])} done, {int(totals['failed'])} failed, "
        f"{int(totals['missing'])} missing"
    )
    for axis, frame in tables.items():
        if len(frame) <= 1:
            continue
        table = Table(title=axis)
        table.add_column(axis)
        for col in frame.columns:
            table.add_column(col, justify="right")
        for value, row in frame.iterrows():
            table.add_row(str(value), *(str(int(v)) for v in row))
        console.print(table)


@app.command()
def train(
    config: Annotated[Path, typer.Argument(help="Training config YAML (see campaigns/training/).")],
    restart: Annotated[bool, typer.Option("--restart", help="Discard a saved training state and start over.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar; one line per epoch.")] = False,
) -> None:
    """Train the GNN force field on frames from campaign stores; resumes an interrupted run."""
    from hts_mlff.spec.training import load_training_config
    from hts_mlff.store.layout import StoreError
    from hts_mlff.training import train as run_training

    spec, path, text = _load_or_exit(load_training_config, config, what="training config", nothing="trained")
    columns = [TextColumn("{task.description}")]
    columns += [BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), TimeRemainingColumn()]
    with Progress(*columns, console=console, disable=quiet) as progress:
        bar = progress.add_task("loading frames", total=None)

        def on_batch(epoch: int, batch: int, loss: float) -> None:
            progress.update(bar, advance=1)

        def on_epoch(record: dict[str, Any]) -> None:
            line = (
                f"epoch {record['epoch']}/{spec.optimisation.epochs}: loss {record['train_loss']:.4f}, "
                f"validation MAE {record['validation_mae_eV_per_A'] * 1e3:.3f} meV/Å, "
                f"R² {record['validation_r2']:.5f}"
            )
            if quiet:
                console.print(line)
            else:
                progress.console.print(line)
                progress.update(
                    bar,
                    description=f"after epoch {record['epoch']}: {record['validation_mae_eV_per_A'] * 1e3:.3f} meV/Å",
                )

        def on_start(total_steps: int, first_epoch: int) -> None:
            progress.update(bar, total=total_steps, completed=0, description="training")
            if first_epoch:
                progress.console.print(f"resuming after epoch {first_epoch}")

        try:
            result = run_training(
                spec,
                config_path=path,
                config_text=text,
                restart=restart,
                on_epoch=on_epoch,
                on_batch=on_batch,
                on_start=on_start,
            )
        except (StoreError, ValueError) as exc:
            err_console.print(f"[red]error[/red]: {exc}")
            raise typer.Exit(1) from None
    mae = result.metrics.get("validation_mae_eV_per_A", float("nan")) * 1e3
    console.print(f"wrote {result.checkpoint} (validation MAE {mae:.3f} meV/Å, {result.wall_s:.0f} s)")


@app.command()
def parity(
    store: StorePath,
    forcefield: Annotated[Path, typer.Argument(help="GNN checkpoint to test against the store's reference forces.")],
    figure: Annotated[
        Path | None, typer.Option("--figure", "-f", help="Write the parity plot here (PNG/PDF/SVG).")
    ] = None,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write the parity dataset (netCDF or Zarr).")
    ] = None,
    max_frames: Annotated[int, typer.Option(help="Frames evaluated per system.")] = 100,
) -> None:
    """Force parity (R², MAE, RMSE, error distribution) of a force field against stored reference forces."""
    from hts_mlff.analysis.parity import force_parity, plot_force_parity
    from hts_mlff.forcefields.checkpoint import CheckpointError, load
    from hts_mlff.store.layout import StoreError
    from hts_mlff.store.reader import open_campaign

    try:
        ds = open_campaign(store)
        ff = load(forcefield)
        result = force_parity(ds, ff, max_frames_per_system=max_frames)
    except (StoreError, CheckpointError, ValueError) as exc:
        err_console.print(f"[red]error[/red]: {exc}")
        raise typer.Exit(1) from None
    table = Table(title=f"force parity: {forcefield.name} vs the reference forces of {store.name}")
    for col in ("system", "atoms", "frames", "MAE meV/Å", "RMSE meV/Å", "max meV/Å", "1 − R²"):
        table.add_column(col, justify="right")
    for system in result["system"].values:
        one = result.sel(system=system)
        table.add_row(
            str(system),
            str(int(one["n_atoms"])),
            str(int(one["n_frames"])),
            f"{float(one['mae_eV_per_A']) * 1e3:.4g}",
            f"{float(one['rmse_eV_per_A']) * 1e3:.4g}",
            f"{float(one['max_abs_error_eV_per_A']) * 1e3:.4g}",
            f"{1 - float(one['r2']):.3g}",
        )
    console.print(table)
    if figure is not None:
        plot_force_parity(result, str(figure))
        console.print(f"wrote {figure}")
    if output is not None:
        if output.suffix == ".zarr":
            result.to_zarr(output, mode="w")
        else:
            result.to_netcdf(output)
        console.print(f"wrote {output}")


@app.command()
def phonons(
    config: Annotated[Path, typer.Argument(help="Phonon-sweep YAML (see campaigns/ar-phonons.yaml).")],
) -> None:
    """T = 0 phonons vs pressure for every force field: Hessian symmetricity, modes, DOS, dispersion; resumes."""
    from hts_mlff.analysis.phonon_report import phonon_table, plot_dispersion, plot_dos, plot_symmetricity
    from hts_mlff.spec.phonons import load_phonon_config
    from hts_mlff.statics.phonon_sweep import run_phonon_sweep

    spec, path = _load_or_exit(load_phonon_config, config, what="phonon-sweep file", nothing="computed")

    def describe(ds) -> str:
        worst = float(1 - ds["symmetricity"].min())
        return (
            f"a = {float(ds['lattice_A']):.4f} Å, ν max {float(ds['mode_frequency_THz'].max()):.3f} THz, "
            f"1 − S ≤ {worst:.2e} ({float(ds['wall_s']):.1f} s)"
        )

    result = _run_sweep_or_exit(run_phonon_sweep, spec, path, describe=describe)
    output = (path.parent / spec.output).resolve()
    reference = spec.phonons.reference
    table = phonon_table(result, reference=reference)
    _print_frame(table, title=f"{spec.name}: phonons" + (f" (against {reference})" if reference else ""))
    table.to_csv(output / "phonons.csv")
    console.print(f"wrote {output / 'phonons.zarr'}")
    console.print(f"wrote {output / 'phonons.csv'}")
    for figure in (
        plot_dos(result, output / "phonon-dos.png", reference=reference),
        plot_dispersion(result, output / "phonon-dispersion.png", reference=reference),
        plot_symmetricity(result, output / "phonon-symmetricity.png"),
    ):
        console.print(f"wrote {figure}")


@app.command()
def barrier(
    config: Annotated[Path, typer.Argument(help="Barrier-sweep YAML (see campaigns/ar-vacancy-string.yaml).")],
) -> None:
    """Vacancy-hop barrier vs pressure for every force field (string method); resumes a stopped sweep."""
    from hts_mlff.analysis.barrier_report import barrier_table, plot_barrier_profiles, plot_barrier_vs_pressure
    from hts_mlff.spec.barrier import load_barrier_config
    from hts_mlff.statics.barrier_sweep import run_barrier_sweep

    spec, path = _load_or_exit(load_barrier_config, config, what="barrier-sweep file", nothing="computed")

    def describe(ds) -> str:
        flag = "" if int(ds["converged"]) else " [yellow]NOT CONVERGED[/yellow]"
        return (
            f"E_b = {float(ds['barrier_eV']) * 1e3:.3f} meV "
            f"({float(ds['wall_s']):.1f} s, {int(ds['iterations'])} iterations){flag}"
        )

    result = _run_sweep_or_exit(run_barrier_sweep, spec, path, describe=describe)
    output = (path.parent / spec.output).resolve()
    _print_frame(barrier_table(result), title=f"{spec.name}: vacancy-hop barriers")
    console.print(f"wrote {output / 'barriers.zarr'}")
    for figure in (
        plot_barrier_profiles(result, output / "barrier-profiles.png"),
        plot_barrier_vs_pressure(result, output / "barrier-vs-pressure.png"),
    ):
        console.print(f"wrote {figure}")
    if not bool(result["converged"].all()):
        raise typer.Exit(1)


@app.command()
def vacancy(
    store: StorePath,
    reference: Annotated[
        str | None, typer.Option("--reference", "-r", help="Reference force field (drawn in black).")
    ] = None,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Folder for CSV tables and figures.")] = None,
    system: Annotated[
        str | None,
        typer.Option(help="System to analyse (SED: required when the store holds several; Green–Kubo: default all)."),
    ] = None,
    min_dwell: Annotated[int, typer.Option(help="Samples a vacancy must stay on a new site to count a jump.")] = 1,
    estimator: Annotated[str, typer.Option(help="mle (first jumps, censoring-aware) or all (every jump).")] = "mle",
    debye: Annotated[bool, typer.Option(help="Compare ν₀ with ν_D from each force field's force constants.")] = True,
    bootstrap: Annotated[int, typer.Option(help="Bootstrap resamples for the rate intervals.")] = 1000,
) -> None:
    """Vacancy jump rates per (force field, T, P) over windows, and their Arrhenius fits (E_b, ν₀).

    (A typer command: its parameters are the command-line options.)
    """
    from hts_mlff.analysis.vacancy import jump_rates, plot_rate_arrhenius, plot_survival, rate_arrhenius, window_jumps
    from hts_mlff.store.layout import StoreError

    if estimator not in ("mle", "all"):
        err_console.print(f"[red]error[/red]: --estimator {estimator!r}: use mle or all")
        raise typer.Exit(2)
    rate, events = (
        ("rate_mle_per_ps", "n_windows_with_jump") if estimator == "mle" else ("rate_all_jumps_per_ps", "n_jumps")
    )
    try:
        ds, attrs, spec, systems = _store_with_spec(store, system=system)
        if system is None and len(systems) > 1:
            raise ValueError(f"the store holds several systems {systems}: pick one with --system")
        system = system or systems[0]
        if reference is not None and reference not in spec.forcefields:
            raise ValueError(
                f"--reference {reference!r} is not a force field of this campaign ({sorted(spec.forcefields)})"
            )
        one = ds.sel(system=system) if "system" in ds.indexes["traj"].names and len(systems) > 1 else ds
        windows = window_jumps(one, min_dwell_samples=min_dwell).compute()
        rates = jump_rates(windows, n_bootstrap=bootstrap)
        debye_THz = None
        if debye:
            from hts_mlff.statics.barrier_sweep import campaign_debye_frequencies

            base = Path(attrs.get("campaign_file", ".")).parent
            pressures = [float(p) for p in rates["pressure_bar"].values]
            debye_THz = campaign_debye_frequencies(spec, system, base_dir=base, pressures_bar=pressures)
            debye_THz = debye_THz.sel(forcefield=list(rates["forcefield"].values))
        fits = rate_arrhenius(rates, rate=rate, events=events, debye_frequency_THz=debye_THz)
    except (StoreError, ValueError) as exc:
        err_console.print(f"[red]error[/red]: {exc}")
        raise typer.Exit(1) from None
    columns = [rate, "rate_low_per_ps", "rate_high_per_ps", "rate_survival_fit_per_ps", "n_windows", events]
    columns += ["n_windows_disordered"] if "n_windows_disordered" in rates else []
    if estimator == "all":
        columns[1:3] = ["rate_all_low_per_ps", "rate_all_high_per_ps"]
    _print_frame(rates[list(dict.fromkeys(columns))].to_dataframe(), title=f"{store.name}: vacancy jump rates (1/ps)")
    fit_frame = fits.to_dataframe()
    by_quantity = fit_frame.T.rename_axis("quantity")
    by_quantity.columns = [
        " @ ".join(f"{v:g} bar" if isinstance(v, float) else str(v) for v in c) for c in by_quantity.columns
    ]
    _print_frame(
        by_quantity,
        title=f"Arrhenius r = ν₀ exp(−E_b/k_B T) ({estimator}; activation energy E_b in eV, prefactor ν₀ in THz)",
    )
    if output is not None:
        output.mkdir(parents=True, exist_ok=True)
        written = [output / "vacancy-rates.csv", output / "vacancy-arrhenius.csv"]
        rates.to_dataframe().to_csv(written[0])
        fit_frame.to_csv(written[1])
        written.append(
            plot_rate_arrhenius(rates, fits, str(output / "vacancy-arrhenius.png"), rate=rate, reference=reference)
        )
        for pressure in rates["pressure_bar"].values:
            written.append(
                plot_survival(
                    windows, rates, str(output / f"vacancy-survival-{pressure:g}bar.png"), pressure_bar=float(pressure)
                )
            )
        for path in written:
            console.print(f"wrote {path}")


@app.command()
def thermal(
    store: StorePath,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Folder for CSV tables and figures.")] = None,
    system: Annotated[
        str | None,
        typer.Option(help="System to analyse (SED: required when the store holds several; Green–Kubo: default all)."),
    ] = None,
    harmonic: Annotated[
        str | None,
        typer.Option(help="Force field for polarisations and group velocities (default: each point's own)."),
    ] = None,
    kappa: Annotated[bool, typer.Option(help="κ from SED lifetimes on the cell's full k grid.")] = True,
    heat_capacity: Annotated[str, typer.Option(help="classical (k_B per mode) or quantum.")] = "classical",
    segments: Annotated[int, typer.Option(help="Average the spectra of this many segments per trajectory.")] = 1,
    cutoff_fs: Annotated[
        float | None, typer.Option(help="Green–Kubo integration cut-off (default: first zero of the HCACF).")
    ] = None,
) -> None:
    """SED maps, phonon lifetimes and κ (SED and Green–Kubo) per (force field, T, P)."""
    from hts_mlff.analysis.thermal_report import (
        kappa_table,
        plot_kappa,
        plot_lifetimes,
        plot_running_kappa,
        plot_sed_map,
    )
    from hts_mlff.store.layout import StoreError
    from hts_mlff.thermal import green_kubo_study, sed_study

    if heat_capacity not in ("classical", "quantum"):
        err_console.print(f"[red]error[/red]: --heat-capacity {heat_capacity!r}: use classical or quantum")
        raise typer.Exit(2)
    study = green_kubo = None
    try:
        ds, attrs, spec, systems = _store_with_spec(store, system=system)
        if harmonic is not None and harmonic not in spec.forcefields:
            known = sorted(spec.forcefields)
            raise ValueError(f"--harmonic {harmonic!r} is not a force field of this campaign ({known})")
        if "velocities" not in ds and "heat_current_eV_A_per_fs" not in ds:
            raise ValueError(
                "the store has neither velocities (analyses: [sed]) nor a heat current (analyses: [heat_flux])"
            )
        if "velocities" in ds:
            if system is None and len(systems) > 1:
                raise ValueError(f"the store holds several systems {systems}: pick one with --system")
            study = sed_study(
                ds,
                spec,
                system=system or systems[0],
                base_dir=Path(attrs.get("campaign_file", ".")).parent,
                harmonic=harmonic,
                kappa=kappa,
                heat_capacity=heat_capacity,
                n_segments=segments,
            )
        if "heat_current_eV_A_per_fs" in ds:
            green_kubo = green_kubo_study(ds, cutoff_fs=cutoff_fs, system=system)
    except (StoreError, ValueError) as exc:
        err_console.print(f"[red]error[/red]: {exc}")
        raise typer.Exit(1) from None
    for note in study.notes if study is not None else []:
        err_console.print(f"[yellow]{note}[/yellow]")
    table = kappa_table(study.kappa if study is not None else None, green_kubo.kappa if green_kubo else None)
    if not table.empty:
        _print_frame(table, title=f"{store.name}: thermal conductivity ({heat_capacity} C for SED)")
    if study is not None:
        line = study.lifetimes_line
        summary = line[["peak_THz", "harmonic_THz", "lifetime_ps"]].median(["k", "branch"]).to_dataframe()
        summary["resolved fraction"] = line["resolved"].mean(["k", "branch"]).to_series()
        _print_frame(summary, title="Γ–X: median SED peak, harmonic frequency and lifetime")
    if output is not None:
        output.mkdir(parents=True, exist_ok=True)
        written = []
        if not table.empty:
            table.to_csv(output / "kappa.csv")
            written += [output / "kappa.csv", plot_kappa(table, output / "kappa.png")]
        if green_kubo is not None:
            written.append(plot_running_kappa(green_kubo.running, green_kubo.kappa, output / "running-kappa.png"))
        if study is not None:
            study.lifetimes_line.reset_index("point").to_dataframe().to_csv(output / "lifetimes-gamma-x.csv")
            written += [
                output / "lifetimes-gamma-x.csv",
                plot_sed_map(study.sed_line, study.lifetimes_line, output / "sed-gamma-x.png"),
                plot_lifetimes(study.lifetimes_line, output / "lifetimes.png"),
            ]
        for path in written:
            console.print(f"wrote {path}")


@app.command()
def report(
    store: StorePath,
    reference: Annotated[str, typer.Option("--reference", "-r", help="The campaign's reference force field.")],
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Folder for CSV tables and the heatmap.")
    ] = None,
    mobile: Annotated[str | None, typer.Option(help="Mobile species (symbol) for D and σ; default all atoms.")] = None,
    charge: Annotated[float, typer.Option(help="Charge number of the mobile species.")] = 1.0,
    violation: Annotated[bool, typer.Option(help="Re-evaluate the reference on stored frames (EV, FV).")] = True,
    rdf_bins: Annotated[int, typer.Option(help="Bins of g(r) over 0–10 Å.")] = 200,
) -> None:
    """Per force field: fraction stable, survival, WF, JSD, RDF MAE, EV, FV, D, σ(300 K)."""
    from ase.data import atomic_numbers

    from hts_mlff.analysis.summary import plot_summary_heatmap, summarize
    from hts_mlff.forcefields.registry import build_forcefield
    from hts_mlff.spec.model import Campaign
    from hts_mlff.store.layout import CampaignStore, StoreError
    from hts_mlff.store.reader import open_campaign

    try:
        ds = open_campaign(store)
        attrs = CampaignStore(store).attrs()
        spec = Campaign.model_validate(attrs["spec"])
        if reference not in spec.forcefields:
            raise ValueError(f"{reference!r} is not a force field of this campaign ({sorted(spec.forcefields)})")
        if mobile is not None and mobile not in atomic_numbers:
            raise ValueError(f"--mobile {mobile!r}: not a chemical symbol")
        reference_ff = None
        if violation and "forces" in ds:
            base = Path(attrs.get("campaign_file", ".")).parent
            reference_ff = build_forcefield(spec.forcefields[reference], base_dir=base)
        summary = summarize(
            ds,
            reference=reference,
            reference_forcefield=reference_ff,
            mobile=None if mobile is None else atomic_numbers[mobile],
            charge=charge,
            n_bins=rdf_bins,
        )
    except (StoreError, ValueError) as exc:
        err_console.print(f"[red]error[/red]: {exc}")
        raise typer.Exit(1) from None
    by_metric = summary.per_forcefield.T.rename_axis("metric")
    _print_frame(by_metric, title=f"{store.name}: summary per force field (reference {reference})")
    if summary.diffusion is not None:
        _print_frame(summary.diffusion, title="diffusion (mean ± s.e.m. over trajectories)")
    if output is not None:
        for path in summary.write(output):
            console.print(f"wrote {path}")
        figure = plot_summary_heatmap(summary.per_forcefield, str(Path(output) / "summary.png"))
        console.print(f"wrote {figure}")
        if summary.diffusion is not None and "sigma_S_per_cm" in summary.diffusion:
            for figure in _arrhenius_figures(summary.diffusion, Path(output)):
                console.print(f"wrote {figure}")


def _arrhenius_figures(table, folder: Path) -> list[str]:
    """σ(T) with its Arrhenius fit and the 300 K extrapolation, one figure per force field."""
    import xarray as xr

    from hts_mlff.analysis.arrhenius import arrhenius_fit, plot_arrhenius

    written = []
    for ff in table.index.get_level_values("forcefield").unique():
        series = table.xs(ff, level="forcefield")["sigma_S_per_cm"]
        values = xr.DataArray(series.to_numpy(), dims="temperature_K", coords={"temperature_K": series.index})
        fit = arrhenius_fit(values, times_temperature=True)
        written.append(plot_arrhenius(values, fit, str(folder / f"arrhenius-{ff}.png")))
    return written


def _run_sweep_or_exit(run, spec, path: Path, *, describe):
    """Run a statics sweep, printing one line per point (``describe(dataset)``, marked when reused);
    a point that fails ends the command with exit code 1, finished points kept."""

    def on_point(forcefield: str, pressure_bar: float, ds, reused: bool) -> None:
        console.print(f"{forcefield} @ {pressure_bar:g} bar: {describe(ds)}" + (" [reused]" if reused else ""))

    try:
        return run(spec, base_dir=path.parent, on_point=on_point)
    except RuntimeError as exc:
        err_console.print(f"[red]error[/red]: {exc} (finished points are kept; rerun to resume)")
        raise typer.Exit(1) from None


def _load_or_exit(loader, path: Path, *, what: str, nothing: str):
    """``loader(path)``; a missing file or located problems end the command with exit code 2."""
    from hts_mlff.spec.load import CampaignError

    try:
        return loader(path)
    except FileNotFoundError:
        err_console.print(f"[red]error[/red]: {path}: no such {what}")
        raise typer.Exit(2) from None
    except CampaignError as exc:
        for problem in exc.problems:
            err_console.print(f"[red]{problem}[/red]", highlight=False, soft_wrap=True)
        err_console.print(f"{path}: {len(exc.problems)} error(s); nothing was {nothing}.")
        raise typer.Exit(2) from None


def _print_frame(frame, *, title: str) -> None:
    table = Table(title=title)
    index_names = [n or "" for n in frame.index.names]
    for name in [*index_names, *frame.columns]:
        table.add_column(str(name), justify="right")
    for key, row in frame.iterrows():
        keys = key if isinstance(key, tuple) else (key,)
        table.add_row(*(str(k) for k in keys), *(f"{v:.4g}" if isinstance(v, float) else str(v) for v in row))
    console.print(table)


@app.command()
def schema(
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Write here instead of stdout.")] = None,
) -> None:
    """Print (or write) the JSON Schema of the campaign file."""
    from hts_mlff.spec.schema import campaign_schema_text

    text = campaign_schema_text()
    if output is None:
        console.print_json(text)
    else:
        output.write_text(text)
        console.print(f"wrote {output}")


def main() -> None:  # pragma: no cover
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
