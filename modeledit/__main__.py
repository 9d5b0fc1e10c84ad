"""``python -m modeledit``: the same command line as ``modeledit``."""
import sys

from modeledit.cli import main

sys.exit(main())
