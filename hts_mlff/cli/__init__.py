"""Command line: ``hts-mlff validate | plan | run | status | schema | train | parity | phonons |
barrier | vacancy | thermal | report``, one module per family of commands, all on one Typer app
(the import order below is the order of ``--help``)."""

# isort: off
from hts_mlff.cli.common import app
from hts_mlff.cli import campaign, training, statics, analyses  # noqa: F401  (registers the commands)
# isort: on

__all__ = ["app", "main"]


def main() -> None:  # pragma: no cover
    app()
