"""``python -m cryosampler`` runs the command line."""

import sys

from cryosampler.cli import main

sys.exit(main())
