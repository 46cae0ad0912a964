"""Commands of the GNN: ``train`` (from campaign stores) and ``parity`` (forces against a store)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from hts_mlff.cli.common import (
    AllowCode,
    StorePath,
    TrustedCampaign,
    _load_or_exit,
    _store_with_spec,
    app,
    console,
    err_console,
)


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
    quiet = quiet or not console.is_terminal  # a log file gets one line per epoch, not a bar
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
    reference: Annotated[
        str | None,
        typer.Option("--reference", "-r", help="Only this force field's trajectories give reference forces."),
    ] = None,
) -> None:
    """Force parity (R², MAE, RMSE, error distribution) of a force field against stored reference forces."""
    from hts_mlff.analysis.parity import force_parity, plot_force_parity
    from hts_mlff.forcefields.checkpoint import CheckpointError, load
    from hts_mlff.store.layout import StoreError
    from hts_mlff.store.reader import open_campaign

    try:
        ds = open_campaign(store)
        ff = load(forcefield)
        result = force_parity(ds, ff, max_frames_per_system=max_frames, reference=reference)
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
        if result.sizes["species"] > 1:
            for symbol in result["species"].values:
                part = one.sel(species=symbol)
                table.add_row(
                    f"  {symbol}",
                    "",
                    "",
                    f"{float(part['mae_by_species_eV_per_A']) * 1e3:.4g}",
                    f"{float(part['rmse_by_species_eV_per_A']) * 1e3:.4g}",
                    f"{float(part['max_abs_error_by_species_eV_per_A']) * 1e3:.4g}",
                    f"{1 - float(part['r2_by_species']):.3g}",
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
def harvest(
    store: StorePath,
    reference: Annotated[str, typer.Option("--reference", "-r", help="The campaign's reference force field.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Training-frame store to write (Zarr).")],
    forcefield: Annotated[
        list[str] | None,
        typer.Option("--forcefield", "-f", help="Harvest only this force field's trajectories (repeatable)."),
    ] = None,
    frames_before_failure: Annotated[
        int, typer.Option(help="Saved frames taken before a guard failure (−1: criterion off).")
    ] = 3,
    force_error: Annotated[
        float, typer.Option(help="Largest per-atom force error vs the reference, eV/Å (0: criterion off).")
    ] = 0.1,
    structure_z: Annotated[
        float,
        typer.Option(help="Robust z-score of a frame's RDF distance vs the reference frames' for an outlier (0: off)."),
    ] = 5.0,
    max_reference_force: Annotated[
        float | None, typer.Option(help="Drop picked frames whose reference forces exceed this (eV/Å).")
    ] = None,
    campaign: TrustedCampaign = None,
    allow_code: AllowCode = False,
) -> None:
    """Frames where an MLFF departs from the reference (before guard failures, force disagreement,
    structure outliers), labelled with the reference's forces, as a store ``train`` reads."""
    from hts_mlff.forcefields.registry import build_forcefield
    from hts_mlff.store.layout import StoreError
    from hts_mlff.training.harvest import REASONS, HarvestCriteria, has_reason, select_frames, write_training_frames

    try:
        criteria = HarvestCriteria(
            frames_before_failure=None if frames_before_failure < 0 else frames_before_failure,
            force_error_eV_per_A=force_error or None,
            structure_z=structure_z or None,
            max_reference_force_eV_per_A=max_reference_force,
        )
        ds, spec, _, base = _store_with_spec(store, system=None, campaign=campaign, allow_code=allow_code)
        if reference not in spec.forcefields:
            raise ValueError(
                f"--reference {reference!r} is not a force field of this campaign ({sorted(spec.forcefields)})"
            )
        reference_ff = build_forcefield(spec.forcefields[reference], base_dir=base)
        frames = select_frames(
            ds, reference=reference, reference_forcefield=reference_ff, criteria=criteria, forcefields=forcefield
        )
        if frames.sizes["frame"] == 0:
            console.print(f"no frame of {frames.attrs['frames_scanned']} scanned met a criterion; nothing written")
            return
        write_training_frames(frames, output, source_store=str(store.resolve()))
    except (StoreError, ValueError, FileExistsError) as exc:
        err_console.print(f"[red]error[/red]: {exc}")
        raise typer.Exit(1) from None
    table = Table(title=f"harvested from {store.name} (reference {reference})")
    for col in ("force field", "frames", *REASONS):
        table.add_column(col.replace("_", " "), justify="right")
    names = frames["source_forcefield"].to_numpy()
    for name in dict.fromkeys(names.tolist()):
        mine = names == name
        table.add_row(
            str(name), str(int(mine.sum())), *(str(int((has_reason(frames, r) & mine).sum())) for r in REASONS)
        )
    console.print(table)
    if frames.attrs["structure_state_points"] == 0 and criteria.structure_z is not None:
        console.print("no state point has reference frames: the structure criterion was not applied")
    console.print(f"wrote {output} ({frames.sizes['frame']} of {frames.attrs['frames_scanned']} frames scanned)")


@app.command("export-frames")
def export_frames(
    store: StorePath,
    reference: Annotated[
        str, typer.Option("--reference", "-r", help="The campaign's force field that labels the frames.")
    ],
    output: Annotated[Path, typer.Option("--output", "-o", help="Extended XYZ file to write.")],
    system: Annotated[
        list[str] | None, typer.Option("--system", "-s", help="Only this system's frames (repeatable).")
    ] = None,
    max_temperature_K: Annotated[float | None, typer.Option(help="Drop frames hotter than this (K).")] = None,
    every: Annotated[int, typer.Option(min=1, help="Keep every N-th frame (in store order).")] = 1,
    campaign: TrustedCampaign = None,
    allow_code: AllowCode = False,
) -> None:
    """A store's frames as extended XYZ labelled by a reference (REF_energy, REF_forces,
    REF_stress), for other packages' trainers (mace_run_train, nequip-train)."""
    from hts_mlff.forcefields.registry import build_forcefield
    from hts_mlff.store.layout import StoreError
    from hts_mlff.training.export import labelled_frames, write_extxyz
    from hts_mlff.training.frames import frames_from_store

    try:
        _, spec, _, base = _store_with_spec(store, system=None, campaign=campaign, allow_code=allow_code)
        if reference not in spec.forcefields:
            raise ValueError(
                f"--reference {reference!r} is not a force field of this campaign ({sorted(spec.forcefields)})"
            )
        frames = frames_from_store(store, systems=system, max_temperature_K=max_temperature_K)[::every]
        if not frames:
            raise ValueError(f"{store}: no frame with positions and forces saved together")
        atoms = labelled_frames(frames, build_forcefield(spec.forcefields[reference], base_dir=base))
        write_extxyz(atoms, output)
    except (StoreError, ValueError) as exc:
        err_console.print(f"[red]error[/red]: {exc}")
        raise typer.Exit(1) from None
    console.print(f"wrote {output}: {len(atoms)} frames labelled by {reference}")
