"""``rlte residual-mlp-size``: parameters of ``residual_mlp`` encoders over widths and depths, to size one before
training. Added to ``rlte`` by the ``register_commands`` hook in ``plugin.py``.

Only the standard library is imported here: this module is imported whenever ``rlte`` starts, so torch is imported
inside :func:`run`, when the command runs.
"""

from __future__ import annotations

import argparse
import json


def configure(parser: argparse.ArgumentParser) -> None:
    """The command's arguments (rlte has already added ``-h`` and ``--debug``)."""
    parser.add_argument("--in-features", type=int, required=True, help="size of the observation vector")
    parser.add_argument("--width", type=int, nargs="+", default=[64], help="widths to size (default 64)")
    parser.add_argument("--blocks", type=int, nargs="+", default=[2], help="residual block counts (default 2)")
    parser.add_argument("--json", action="store_true", help="print JSON")


def run(args: argparse.Namespace) -> int:
    """Build each encoder through the registry (so bad sizes are refused as they would be in training) and count
    its parameters."""
    import rlte_plugins

    rows = []
    for width in args.width:
        for blocks in args.blocks:
            encoder = rlte_plugins.make(
                "encoder", "residual_mlp", in_features=args.in_features, width=width, blocks=blocks
            )
            parameters = sum(p.numel() for p in encoder.parameters())
            rows.append({"in_features": args.in_features, "width": width, "blocks": blocks, "parameters": parameters})
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    print(f"{'WIDTH':>7} {'BLOCKS':>7} {'PARAMETERS':>12}")
    for row in rows:
        print(f"{row['width']:>7} {row['blocks']:>7} {row['parameters']:>12,}")
    return 0
