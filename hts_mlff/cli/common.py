"""What every command shares: the Typer app, consoles, campaign/store loading and table printing."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
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


TrustedCampaign = Annotated[
    Path | None,
    typer.Option(
        "--campaign",
        help="Campaign file to rebuild force fields from (instead of the spec stored in the store, which "
        "never imports code).",
    ),
]
AllowCode = Annotated[
    bool,
    typer.Option("--allow-code", help="Run the code the campaign file names (imported force fields, prologue lines)."),
]


def _store_with_spec(
    store: Path, *, system: str | None, campaign: Path | None = None, allow_code: bool = False
) -> tuple[Any, Any, list[str], Path]:
    """(dataset, campaign spec, systems, base folder of the spec's files) of a store.

    The spec stored in the store is data: force fields built from it never import code
    (:mod:`hts_mlff.spec.trust`). With ``campaign`` (a file the user passes) that file's spec is
    used instead, its code approved as for ``run``; it must be the store's campaign.
    ValueError for a ``system`` the store does not hold.
    """
    from hts_mlff.spec.model import Campaign
    from hts_mlff.spec.trust import approve_campaign
    from hts_mlff.store.layout import CampaignStore
    from hts_mlff.store.reader import open_campaign

    ds = open_campaign(store)
    attrs = CampaignStore(store).attrs()
    if campaign is None:
        spec = Campaign.model_validate(attrs["spec"])
        base_dir = Path(attrs.get("campaign_file", ".")).parent
    else:
        loaded = _load(campaign)
        if loaded.spec.name != attrs.get("campaign"):
            raise ValueError(
                f"--campaign {campaign}: campaign {loaded.spec.name!r}, but the store holds {attrs.get('campaign')!r}"
            )
        approve_campaign(loaded.spec, allow_code=allow_code, source=str(campaign), base_dir=loaded.base_dir)
        spec, base_dir = loaded.spec, loaded.base_dir
    systems = sorted(set(ds["system"].values.tolist()))
    if system is not None and system not in systems:
        raise ValueError(f"--system {system!r}: the store holds {systems}")
    return ds, spec, systems, base_dir


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
    """A pandas table: headers fold over lines to fit the terminal, values are never cut or split
    (a table wider than the terminal wraps its rows instead)."""
    rows = []
    for key, row in frame.iterrows():
        keys = key if isinstance(key, tuple) else (key,)
        rows.append([str(k) for k in keys] + [f"{v:.4g}" if isinstance(v, float) else str(v) for v in row])
    names = [str(n or "") for n in frame.index.names] + [str(c) for c in frame.columns]
    table = Table(title=title)
    for j, name in enumerate(names):
        widest = max((len(r[j]) for r in rows), default=1)
        table.add_column(name, justify="right", overflow="fold", min_width=widest)
    for row in rows:
        table.add_row(*row)
    console.print(table)
