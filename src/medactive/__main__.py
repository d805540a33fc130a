"""``python -m medactive`` runs the command line."""

from __future__ import annotations

import sys

from medactive.cli import main

sys.exit(main())
