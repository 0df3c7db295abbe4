"""``python -m sparkplane.cli``."""

from . import main

main()
