"""``python -m rlte_plugins.cli``: the ``rlte`` command."""

from rlte_plugins.cli import main

raise SystemExit(main())
