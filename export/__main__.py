"""``python -m export`` runs the ``kws-export`` command line."""

from export.cli import main

main()
