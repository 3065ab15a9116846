"""``python -m hepae``: the same as the ``hepae`` command."""

import sys

from hepae.cli import main

sys.exit(main())
