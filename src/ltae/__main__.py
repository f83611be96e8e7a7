"""``python -m ltae`` runs the command line."""

from ltae.cli import run

run()
