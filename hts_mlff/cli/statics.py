"""Zero-temperature sweeps from their own files: ``phonons`` and ``barrier``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from hts_mlff.cli.common import AllowCode, _load_or_exit, _print_frame, _run_sweep_or_exit, app, console, err_console


@app.command()
def phonons(
    config: Annotated[Path, typer.Argument(help="Phonon-sweep YAML (see campaigns/ar-phonons.yaml).")],
    allow_code: AllowCode = False,
) -> None:
    """T = 0 phonons vs pressure for every force field: Hessian symmetricity, modes, DOS, dispersion; resumes."""
    from hts_mlff.analysis.phonon_report import phonon_table, plot_dispersion, plot_dos, plot_symmetricity
    from hts_mlff.spec.phonons import load_phonon_config
    from hts_mlff.statics.phonon_sweep import run_phonon_sweep

    spec, path = _load_or_exit(load_phonon_config, config, what="phonon-sweep file", nothing="computed")
    _approve_or_exit(spec, config, allow_code=allow_code)

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
    allow_code: AllowCode = False,
) -> None:
    """Vacancy-hop barrier vs pressure for every force field (string method); resumes a stopped sweep."""
    from hts_mlff.analysis.barrier_report import barrier_table, plot_barrier_profiles, plot_barrier_vs_pressure
    from hts_mlff.spec.barrier import load_barrier_config
    from hts_mlff.statics.barrier_sweep import run_barrier_sweep

    spec, path = _load_or_exit(load_barrier_config, config, what="barrier-sweep file", nothing="computed")
    _approve_or_exit(spec, config, allow_code=allow_code)

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


def _approve_or_exit(spec, config: Path, *, allow_code: bool) -> None:
    """Approve the code a sweep file names (see :mod:`hts_mlff.spec.trust`), else exit 2."""
    from hts_mlff.spec.trust import CodeNotAllowedError, approve_campaign

    try:
        approve_campaign(spec, allow_code=allow_code, source=str(config))
    except CodeNotAllowedError as exc:
        err_console.print(f"[red]error[/red]: {exc}", highlight=False)
        raise typer.Exit(2) from None
