"""``rlte info KIND NAME``: one component's summary, provider, signature, arguments and docstring."""

from __future__ import annotations

import argparse

from rlte_plugins.cli.common import EXIT_OK, Subparsers, print_json
from rlte_plugins.registry import KINDS, get_spec


def add_parser(subparsers: Subparsers) -> None:
    p = subparsers.add_parser("info", help="describe one component", description="Describe one component.")
    p.add_argument("kind", help=f"one of: {', '.join(KINDS)}")
    p.add_argument("name", help="component name (or plugin:name)")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    spec = get_spec(args.kind, args.name)
    info = spec.describe(full=True)
    if args.json:
        print_json(info)
        return EXIT_OK
    print(f"{info['kind']} {info['name']}  ({info['qualified_name']})")
    print(f"  {info['summary']}")
    print(f"\nprovider: {info['provider']} {info['version']}   factory: {info['target']}")
    if info["tags"]:
        print(f"tags: {', '.join(info['tags'])}")
    print(f"\nsignature:\n  {info['signature']}")
    helped = [p for p in info["parameters"] if p.get("help")]
    if helped:
        width = max(len(p["name"]) for p in helped)
        print("\narguments:")
        for p in helped:
            default = "" if p["required"] else f" (default {p['default']})"
            print(f"  {p['name']:<{width}}  {p['help']}{default}")
    if info["defaults"]:
        print("registered defaults: " + ", ".join(f"{k}={v}" for k, v in info["defaults"].items()))
    if info["docstring"]:
        print("\n" + info["docstring"])
    return EXIT_OK
