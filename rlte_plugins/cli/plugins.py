"""``rlte plugins``: installed plugins, their versions, hooks and components, and what is wrong with any."""

from __future__ import annotations

import argparse
import sys

from rlte_plugins.cli.common import EXIT_OK, Subparsers, print_json, print_table
from rlte_plugins.registry import get_registry, plugin_problems


def add_parser(subparsers: Subparsers) -> None:
    p = subparsers.add_parser("plugins", help="list installed plugins and load errors", description="List plugins.")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    registry = get_registry()
    plugins = [p.describe() for p in registry.plugins]
    if args.json:
        print_json(plugins)
        for problem in plugin_problems(registry):
            print(f"warning: {problem.problem} (fix: {problem.fix})", file=sys.stderr)
        return EXIT_OK
    rows = [
        (p["name"], p["distribution"], p["version"], p["status"], str(p["components"]), ", ".join(p["hooks"]) or "-")
        for p in plugins
    ]
    print_table(("PLUGIN", "DISTRIBUTION", "VERSION", "STATUS", "COMPONENTS", "HOOKS"), rows, shrink=5)
    for problem in plugin_problems(registry):
        print(f"\n{problem.problem}\n  fix: {problem.fix}")
    return EXIT_OK
