"""Commands on a campaign file and its run: ``validate``, ``plan``, ``run``, ``status``, ``schema``."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from hts_mlff.cli.common import AllowCode, CampaignFile, StorePath, _human_bytes, _load, app, console, err_console


@app.command()
def validate(campaign: CampaignFile) -> None:
    """Check a campaign file; report every problem with file:line."""
    loaded = _load(campaign)
    console.print(f"{campaign}: valid campaign {loaded.spec.name!r}")
    _print_code(loaded)


def _print_code(loaded) -> None:
    """Say what code the campaign would run (imports, prologue lines)."""
    from hts_mlff.spec.trust import describe_code

    lines = describe_code(loaded.spec, base_dir=loaded.base_dir)
    if lines:
        err_console.print(
            "[yellow]this campaign runs code:[/yellow]\n  "
            + "\n  ".join(lines)
            + "\n(a campaign file is code where it names code; `run` needs --allow-code or your allow-list)",
            highlight=False,
        )


@app.command()
def plan(
    campaign: CampaignFile,
    measure: Annotated[
        bool,
        typer.Option("--measure", help="Time a few MD steps of one pack per force field × system here: wall time."),
    ] = False,
    allow_code: AllowCode = False,
) -> None:
    """Print what a campaign expands to, without running anything (--measure: and how long it takes)."""
    from hts_mlff.tasks import expand

    loaded = _load(campaign)
    t0 = time.perf_counter()
    p = expand(loaded.spec, base_dir=loaded.base_dir)
    elapsed = time.perf_counter() - t0
    table = Table(title=f"campaign {loaded.spec.name!r}", show_header=False)
    table.add_column(overflow="fold")
    table.add_column(overflow="fold")
    table.add_row("tasks (trajectories)", f"{len(p.tasks):,}")
    packs = f"{len(p.packs):,} (chunk {p.chunk_size} trajectories)"
    per_slot = p.campaign.execution.tasks_per_slot
    if per_slot > 1:
        packs += f"; refilled: up to {per_slot} tasks per replica, ⌈tasks / {per_slot}⌉ replicas at once"
    table.add_row("packs", packs)
    table.add_row("steps per task", f"{p.total_steps:,}")
    table.add_row("total atom-steps", f"{p.atom_steps:.3e}")
    table.add_row("frames per task", f"{p.n_frames:,}")
    table.add_row("estimated store size", _human_bytes(p.estimated_store_bytes) + " (uncompressed)")
    table.add_row("store", str(loaded.store_path))
    existing = _store_status(loaded, p)
    if existing:
        table.add_row("  in the store", existing)
    for axis in ("forcefield", "system", "temperature_K", "pressure_bar", "seed", "window"):
        values = sorted(set(getattr(p.tasks, axis).tolist()), key=lambda v: (isinstance(v, str), v))
        shown = ", ".join(map(str, values[:8])) + (" …" if len(values) > 8 else "")
        table.add_row(f"  {axis}", f"{len(values)}: {shown}")
    console.print(table)
    console.print(f"expanded in {elapsed * 1e3:.0f} ms")
    if measure:
        _print_estimate(loaded, p, allow_code=allow_code)


def _store_status(loaded, p) -> str:
    """ "N new, M already done, …" for a campaign whose store exists (empty otherwise)."""
    from hts_mlff.schedule.extend import result_changes, split_tasks
    from hts_mlff.spec.model import Campaign
    from hts_mlff.store.layout import CampaignStore, StoreError

    store = CampaignStore(loaded.store_path)
    if not store.exists():
        return ""
    try:
        attrs = store.check_readable()
        new_rows, done, kept = split_tasks(p, store)
        stored = Campaign.model_validate(attrs["spec"])
    except (StoreError, ValueError) as exc:
        return f"unreadable: {exc}"
    text = f"{len(new_rows):,} new, {done:,} already done"
    text += f", {kept:,} stored tasks not in this campaign (kept)" if kept else ""
    if len(new_rows):
        changes = result_changes(stored, loaded.spec, base_dir=loaded.base_dir)
        if changes:
            text += f" — `run` will refuse: it changes {'; '.join(changes[:3])}; use a new store"
    return text


def _print_estimate(loaded, p, *, allow_code: bool) -> None:
    """Measure MD rates here and print the campaign's estimated wall time."""
    from hts_mlff.schedule.estimate import measure
    from hts_mlff.spec.trust import CodeNotAllowedError, approve_campaign

    try:
        approve_campaign(loaded.spec, allow_code=allow_code, source=str(loaded.path), base_dir=loaded.base_dir)
    except CodeNotAllowedError as exc:
        err_console.print(f"[red]error[/red]: {exc}", highlight=False)
        raise typer.Exit(2) from None
    estimate = measure(p, base_dir=loaded.base_dir)
    for (forcefield, system), rate in estimate.rates.items():
        console.print(f"  {forcefield} × {system}: {rate:.3g} atom-steps/s per pack")
    hours = estimate.wall_s / 3600
    shown = f"{estimate.wall_s:.0f} s" if hours < 1 else f"{hours:.1f} h"
    console.print(
        f"estimated wall time: {shown} ({len(p.packs)} packs, {estimate.parallel_packs} at a time; "
        f"rates measured here on {estimate.device} with {estimate.threads} thread(s) per pack: "
        "workers on other hardware, or on a busier machine, run at other rates)"
    )


@app.command()
def run(
    campaign: CampaignFile,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
    detach: Annotated[
        bool, typer.Option("--detach", help="Run the coordinator in the background; it survives logout.")
    ] = False,
    allow_code: AllowCode = False,
    force: Annotated[
        bool, typer.Option("--force", help="Take over a run lock left by another host (a run known to be dead).")
    ] = False,
    verify_store: Annotated[
        bool,
        typer.Option("--verify/--no-verify", help="Check every chunk's checksum first (--no-verify: sizes only)."),
    ] = True,
) -> None:
    """Run a campaign on its cluster (an embedded LocalCluster by default); resumable."""
    from hts_mlff.schedule.runner import run_campaign
    from hts_mlff.spec.trust import CodeNotAllowedError, approve_campaign

    loaded = _load(campaign)
    _print_code(loaded)
    try:
        approve_campaign(loaded.spec, allow_code=allow_code, source=str(campaign), base_dir=loaded.base_dir)
    except CodeNotAllowedError as exc:
        err_console.print(f"[red]error[/red]: {exc}", highlight=False)
        raise typer.Exit(2) from None
    if detach:
        _detach(loaded, allow_code=allow_code, force=force)
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
        elif kind == "damaged":
            for line in info["malformed"]:
                err_console.print(f"[yellow]{line}[/yellow]", highlight=False)
            if info["n_tasks"]:
                err_console.print(
                    f"[yellow]{info['n_tasks']} damaged task(s) in pack(s) {info['packs']}: "
                    "running them again (results are reproducible bit for bit)[/yellow]",
                    highlight=False,
                )
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

    if loaded.spec.adaptive is not None:
        _run_adaptive(loaded, progress=progress, on_event=on_event, allow_code=allow_code)
        return
    with _coordinator_errors("completed tasks are kept; run again to finish the rest"), progress:
        report = run_campaign(loaded, on_event=on_event, allow_code=allow_code, force=force, verify_store=verify_store)
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


@contextlib.contextmanager
def _coordinator_errors(kept: str) -> Iterator[None]:
    """A store or cluster problem is a message and exit 2; Ctrl-C says what is kept (exit 130)."""
    from hts_mlff.schedule.clusters import ClusterError
    from hts_mlff.store.layout import StoreError

    try:
        yield
    except (StoreError, ClusterError) as exc:
        err_console.print(f"[red]error[/red]: {exc}")
        raise typer.Exit(2) from None
    except KeyboardInterrupt:
        err_console.print(f"interrupted: {kept}")
        raise typer.Exit(130) from None


def _run_adaptive(loaded, *, progress, on_event, allow_code: bool) -> None:
    """Rounds of an adaptive campaign, one line per round (hts_mlff.schedule.adaptive)."""
    from hts_mlff.schedule.adaptive import run_adaptive

    def on_round(r) -> None:
        widths = ", ".join(
            f"{f} @ {p:g} bar: {w * 1e3:.2f} meV" if w == w else f"{f} @ {p:g} bar: not bounded yet"
            for (f, p), w in r.widths_eV.items()
        )
        added = ", ".join(f"{n} windows at {t:g} K for {f} @ {p:g} bar" for (f, p), (t, n) in r.added.items())
        progress.console.print(
            f"round {r.index}: E_b interval {widths}; {r.atom_steps:.3g} atom-steps so far"
            + (f"; adding {added}" if added else "")
        )

    target = loaded.spec.adaptive.target_barrier_interval_eV * 1e3
    with _coordinator_errors("completed tasks and rounds are kept; run again to continue"), progress:
        report = run_adaptive(loaded, on_event=on_event, on_round=on_round, allow_code=allow_code)
    reason = {"target": f"every interval ≤ {target:g} meV", "rounds": "max_rounds reached", "budget": "budget"}
    console.print(
        f"adaptive run stopped: {reason[report.stopped_because]} ({report.rounds[-1].atom_steps:.3g} atom-steps)"
    )


def _detach(loaded, *, allow_code: bool, force: bool) -> None:
    """Start ``hts-mlff run`` in a new session with its output in a log file beside the store."""
    import subprocess
    import sys

    log = loaded.store_path.with_name(loaded.store_path.name + ".log")
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "hts_mlff.cli", "run", "--quiet", str(loaded.path)]
            + ["--allow-code"] * allow_code
            + ["--force"] * force,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    console.print(f"coordinator running in the background (pid {proc.pid}); log: {log}")
    console.print(f"follow it with: hts-mlff status {loaded.store_path}")


@app.command()
def status(store: StorePath) -> None:
    """Done / failed / missing / damaged trajectories per sweep axis, from the store alone
    (damaged: a chunk of theirs is missing or changed size; `verify` also checks contents)."""
    _print_status(store, digests=False)


@app.command()
def verify(store: StorePath) -> None:
    """Check every chunk of a store against the checksums its packs recorded; name damaged
    tasks (exit 1 when there are any). `run` on the campaign reruns them."""
    _print_status(store, digests=True)


def _print_status(store: Path, *, digests: bool) -> None:
    from hts_mlff.store.integrity import check_store
    from hts_mlff.store.layout import CampaignStore, StoreError
    from hts_mlff.store.reader import status_table

    try:
        campaign_store = CampaignStore(store)
        attrs = campaign_store.check_readable()
        integrity = check_store(campaign_store, digests=digests)
        tables = status_table(store, integrity=integrity)
    except StoreError as exc:
        err_console.print(f"[red]error[/red]: {exc}")
        raise typer.Exit(2) from None
    totals = next(iter(tables.values())).sum()
    console.print(
        f"campaign {attrs['campaign']!r}: {int(totals['done'])} done, {int(totals['failed'])} failed, "
        f"{int(totals['missing'])} missing, {int(totals['damaged'])} damaged"
    )
    for line in integrity.malformed:
        err_console.print(f"[yellow]{line}[/yellow]", highlight=False)
    for pack, problems in sorted(integrity.damaged_packs.items()):
        shown = "; ".join(problems[:3]) + (f"; … ({len(problems)} chunks)" if len(problems) > 3 else "")
        err_console.print(f"[red]damaged[/red] pack {pack}: {shown}", highlight=False)
    if integrity.damaged_tasks:
        err_console.print(
            f"{len(integrity.damaged_tasks)} damaged task(s): `hts-mlff run CAMPAIGN` reruns them "
            "(results are reproducible bit for bit)"
        )
    if digests and integrity.unverified_tasks:
        console.print(f"{len(integrity.unverified_tasks)} task(s) written without checksums: not verifiable")
    for axis, frame in tables.items():
        if len(frame) <= 1:
            continue
        table = Table(title=axis)
        table.add_column(axis, overflow="fold")
        for col in frame.columns:
            table.add_column(col, justify="right", overflow="fold")
        for value, row in frame.iterrows():
            table.add_row(str(value), *(str(int(v)) for v in row))
        console.print(table)
    if digests and not integrity.ok:
        raise typer.Exit(1)


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
