"""``python -m intake`` is the ``intake`` console script."""

from intake.cli import main

main()
