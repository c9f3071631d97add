"""``python -m hepavol`` runs the command line."""

import sys

from hepavol.cli import main

sys.exit(main())
