"""``python -m rnnlab``: the rnnlab command (torchrun needs a module to run)."""

from rnnlab.cli import main

raise SystemExit(main())
