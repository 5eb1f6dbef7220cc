"""``rlte doctor``: every optional backend and system library, really run where that is cheap, with the fix."""

from __future__ import annotations

import argparse

from rlte_plugins.cli.common import EXIT_OK, Subparsers, print_json
from rlte_plugins.registry import plugin_problems


def add_parser(subparsers: Subparsers) -> None:
    p = subparsers.add_parser(
        "doctor",
        help="check every environment backend and system library",
        description="Check every optional backend (really running it where that is cheap) and print the fix.",
    )
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from rlte_plugins.envs.backends import BACKENDS, check

    rows = []
    for name, backend in BACKENDS.items():
        ok, detail = check(name)
        rows.append({"backend": name, "ok": ok, "purpose": backend.purpose, "detail": detail,
                     "fix": None if ok else backend.fix()})  # fmt: skip
    # plugin rows share the backend rows' keys, so that the JSON stays one list of checks
    problems = [
        {
            "backend": f"plugin:{p.distribution}",
            "ok": False,
            "purpose": "an installed rlte-plugins plugin",
            "detail": p.problem,
            "fix": p.fix,
        }
        for p in plugin_problems()
    ]
    if args.json:
        print_json(rows + problems)
        return EXIT_OK
    for row, failed in [*((r, "MISSING") for r in rows), *((r, "PROBLEM") for r in problems)]:
        mark = "ok     " if row["ok"] else failed
        print(f"{mark} {row['backend']:<12} {row['purpose']}")
        print(f"        {row['detail']}")
        if not row["ok"]:
            print(f"        fix: {row['fix']}")
    missing = sum(not r["ok"] for r in rows)
    print(
        f"{len(rows) - missing} of {len(rows)} backends work"
        + (f"; {missing} missing" if missing else "")
        + (f"; {len(problems)} plugin problem{'s' if len(problems) > 1 else ''}" if problems else "")
    )
    return EXIT_OK
