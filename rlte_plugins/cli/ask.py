"""``rlte ask QUESTION``: which components, docs and recipes answer a question, and a runnable snippet built from
them (offline, BM25 over the registry, the docs and the recipes); ``RLTE_LLM_URL`` adds an OpenAI-compatible
model's answer from the same context."""

from __future__ import annotations

import argparse
import sys

from rlte_plugins.cli.common import EXIT_OK, Subparsers, positive_int, print_json, print_table


def add_parser(subparsers: Subparsers) -> None:
    p = subparsers.add_parser(
        "ask",
        help="answer a question with components, docs, recipes and a runnable snippet",
        description="Answer a question about rlte-plugins offline: the components, doc sections and recipe lines "
        "that match it (BM25), and a runnable snippet built from real registry names and signatures. With "
        "RLTE_LLM_URL set (an OpenAI-compatible base URL, e.g. http://127.0.0.1:8000/v1; RLTE_LLM_MODEL, "
        "RLTE_LLM_API_KEY, RLTE_LLM_TIMEOUT), that model answers from the same context first.",
    )
    p.add_argument("question", nargs="+", help='the question, e.g. "train DrQ-v2 on walker walk from pixels"')
    p.add_argument("--top", type=positive_int, default=5, help="sources listed per kind (default 5)")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.add_argument("--offline", action="store_true", help="ignore RLTE_LLM_URL")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from rlte_plugins.ask import ask

    result = ask(" ".join(args.question), top=args.top, offline=args.offline)
    for warning in result.warnings:
        print(warning if warning.startswith("warning: ") else f"warning: {warning}", file=sys.stderr)
    if args.json:
        print_json(result.to_json())
        return EXIT_OK
    if result.llm is not None:
        print(f"{result.llm['model']} ({result.llm['url']}):\n{result.llm['answer']}\n")
    print(result.answer)
    print(f"\n```python\n{result.snippet}```")
    print("\nsources (* in the snippet):")
    rows = [("*" if c["used"] else "", c["kind"], c["name"], c["summary"]) for c in result.components]
    rows += [("", "doc", d["ref"], "") for d in result.docs] + [("", "recipe", r["ref"], "") for r in result.recipes]
    print_table(("", "SOURCE", "NAME", "SUMMARY"), rows, shrink=3)
    return EXIT_OK
