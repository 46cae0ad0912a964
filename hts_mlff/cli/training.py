"""Commands of the GNN: ``train`` (from campaign stores) and ``parity`` (forces against a store)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from hts_mlff.cli.common import StorePath, _load_or_exit, app, console, err_console


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
