"""Command line: ``hts-mlff validate | plan | run | status | schema | train | parity | phonons |
barrier | vacancy | thermal | report``, one module per family of commands, all on one Typer app
(the import order below is the order of ``--help``)."""

# isort: off
from hts_mlff.cli.common import app
from hts_mlff.cli import campaign, training, statics, analyses  # noqa: F401  (registers the commands)
# isort: on

__all__ = ["app", "main"]


def main() -> None:
    """The ``hts-mlff`` entry point: a user's mistake is a message, never a traceback.

    Commands report the errors they expect (bad files, stores, options) themselves; anything
    else is printed as one line with its type, and ``--debug`` (anywhere on the command line)
    shows the full traceback instead.
    """
    import sys

    from hts_mlff.cli.common import err_console

    debug = "--debug" in sys.argv[1:]
    if debug:
        sys.argv.remove("--debug")
    try:
        app()
    except SystemExit:
        raise
    except KeyboardInterrupt:
        err_console.print("interrupted")
        sys.exit(130)
    except Exception as exc:
        if debug:
            raise
        err_console.print(
            f"[red]error[/red]: {type(exc).__name__}: {exc}\n(run again with --debug for the traceback; "
            "if the input looks right, please report it)",
            highlight=False,
        )
        sys.exit(1)
