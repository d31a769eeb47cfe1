"""``python -m ember`` runs the ``ember`` command."""

from .cli import main

raise SystemExit(main())
