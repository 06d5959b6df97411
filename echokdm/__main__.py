"""``python -m echokdm`` runs the command line."""

from echokdm.cli import run

run()
