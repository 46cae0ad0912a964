"""``python -m hts_mlff.cli``."""

from hts_mlff.cli import main

main()
