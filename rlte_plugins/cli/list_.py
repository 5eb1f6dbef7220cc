"""``rlte list [KIND] [PATTERN]``: registered components, naturally sorted (the module is ``list_``: a submodule
called ``list`` would shadow the builtin inside the package)."""

from __future__ import annotations

import argparse
import difflib
import re
import sys
from typing import Any

from rlte_plugins.cli.common import EXIT_NO_MATCH, EXIT_OK, Subparsers, print_json, print_table, warn_failed
from rlte_plugins.errors import RlteError
from rlte_plugins.registry import KINDS, get_registry, normalize_kind


def add_parser(subparsers: Subparsers) -> None:
    p = subparsers.add_parser("list", help="list registered components", description="List registered components.")
    p.add_argument("kind", nargs="?", help=f"one of: {', '.join(KINDS)} (or a pattern)")
    p.add_argument("pattern", nargs="?", help="fnmatch wildcard over names, e.g. 'mlp*'")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    kind, pattern = args.kind, args.pattern
    if kind is not None and pattern is None:
        try:
            normalize_kind(kind)
        except RlteError:
            kind, pattern = None, kind  # `rlte list 'mlp*'`: a pattern over every kind
    registry = get_registry()
    specs = registry.specs(kind, pattern)
    if not specs:
        if args.json:
            print_json([])
        print(_nothing_matched(registry, kind, pattern), file=sys.stderr)
        warn_failed(registry)
        return EXIT_NO_MATCH
    clashing = _clashing(registry)
    if args.json:
        print_json([s.describe() for s in specs])
        return EXIT_OK
    rows = [
        (
            s.qualified_name if (s.kind, s.name) in clashing else s.name,
            s.kind,
            s.summary,
            f"{s.provider} {s.provider_version}",
        )
        for s in specs
    ]
    print_table(("NAME", "KIND", "SUMMARY", "PROVIDER"), rows, shrink=2)
    warn_failed(registry)
    return EXIT_OK


def _clashing(registry: Any) -> set[tuple[str, str]]:
    seen: dict[tuple[str, str], int] = {}
    for spec in registry.specs():
        seen[(spec.kind, spec.name)] = seen.get((spec.kind, spec.name), 0) + 1
    return {key for key, count in seen.items() if count > 1}


def _nothing_matched(registry: Any, kind: str | None, pattern: str | None) -> str:
    """What was searched, and the likeliest thing that was meant."""
    if kind is not None:
        kind = normalize_kind(kind)
    if pattern is None:
        return f"no {kind} is registered by the installed plugins (`rlte plugins` lists them)"
    message = f"no {kind or 'component of any kind'} matches {pattern!r}"
    term = re.sub(r"[*?\[\]]", "", pattern).lower()
    if kind is None and term:
        kinds = {**{k: k for k in KINDS}, **{f"{k}s": k for k in KINDS}, "policies": "policy"}
        close = difflib.get_close_matches(term, list(kinds), n=1, cutoff=0.6)
        if close:
            return f"{message}; did you mean the kind {kinds[close[0]]!r}? (`rlte list {kinds[close[0]]}`)"
    elsewhere = registry.specs(None, pattern) if kind is not None else []
    if elsewhere:
        found = elsewhere[0]
        return f"{message}; {found.kind} {found.name!r} does (`rlte list {found.kind} '{pattern}'`)"
    listing = f"rlte list {kind}" if kind else "rlte list"
    by_name = {s.name: s for s in reversed(registry.specs(kind))}  # reversed: a name's first kind wins
    close = difflib.get_close_matches(term, sorted(by_name), n=1, cutoff=0.6)
    if close:
        spec = by_name[close[0]]
        return f"{message}; did you mean {spec.kind} {spec.name!r}? (`rlte list {spec.kind} {spec.name}`)"
    if pattern == term and registry.specs(kind, f"*{term}*"):
        return f"{message}; some names contain it: `{listing} '*{term}*'`"
    return f"{message} (`{listing}` shows what there is)"
