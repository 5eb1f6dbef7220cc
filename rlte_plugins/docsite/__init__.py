"""The documentation site's pages generated from the registry: one page per registered component (built-ins and
every installed plugin alike), one index per kind and one of everything.

``make docs`` runs ``mkdocs build --strict``; the MkDocs hooks in :mod:`rlte_plugins.docsite.hooks` add these
pages to the site and its navigation. Docstrings are written for ``rlte info`` and doctest (reST roles such as
``:func:`name```, Google-style sections); :func:`docstring_markdown` turns them into Markdown.

Examples:
    >>> from rlte_plugins.docsite import component_path, docstring_markdown
    >>> component_path("agent", "ppo")
    'components/agent/ppo.md'
    >>> print(docstring_markdown("Uses :func:`~rlte_plugins.make`.\\n\\nArgs:\\n    n (int): how many."))
    Uses `make`.
    <BLANKLINE>
    **Args**
    <BLANKLINE>
    - `n` (int): how many.
"""

from __future__ import annotations

import re
import textwrap
from dataclasses import dataclass
from typing import Any

from rlte_plugins.registry import BUILTIN_PLUGIN, KINDS, ComponentSpec, Registry, get_registry, plugin_problems

__all__ = [
    "KIND_TITLES",
    "Page",
    "component_markdown",
    "component_path",
    "docstring_markdown",
    "generate_pages",
    "reference_roles",
]

#: section titles of the kinds, in the order of ``rlte list``
KIND_TITLES = {
    "agent": "Agents",
    "encoder": "Encoders",
    "policy": "Policies",
    "distribution": "Distributions",
    "storage": "Storages",
    "augmentation": "Augmentations",
    "reward": "Intrinsic rewards",
    "env": "Environments",
    "loss": "Losses",
}

_ROLE = re.compile(r":(?:py:)?(?:func|meth|class|attr|data|mod|obj|exc|const):`([^`]+)`")
_SECTION = re.compile(
    r"^(Args|Arguments|Parameters|Keyword Args|Returns|Yields|Raises|Attributes|Examples?|Notes?|"
    r"See Also|Warnings?|References?):\s*$"
)
# "name: text", "name (type): text" and "a, b, c: text" (several arguments described at once)
_ITEM = re.compile(r"^((?:\*{0,2}\w+)(?:,\s*\*{0,2}\w+)*)(?:\s*\(([^)]*)\))?:\s*(.*)$")


@dataclass(frozen=True)
class Page:
    """One generated page: its path under ``docs/``, title and Markdown."""

    path: str
    title: str
    markdown: str


def component_path(kind: str, name: str, plugin: str | None = None) -> str:
    """Where the page of component ``kind``/``name`` lives, relative to ``docs/``; ``plugin`` when several
    plugins register the name (the one ``make`` picks by the plain name keeps the plain page)."""
    return f"components/{kind}/{name if plugin is None else f'{plugin}--{name}'}.md"


def _page_names(specs: list[ComponentSpec]) -> list[tuple[ComponentSpec, str, str]]:
    """Each spec's page file name (within its kind's folder) and the name ``make`` accepts for it."""
    counts: dict[str, int] = {}
    for spec in specs:
        counts[spec.name] = counts.get(spec.name, 0) + 1
    out = []
    for spec in specs:
        if counts[spec.name] == 1 or spec.plugin == BUILTIN_PLUGIN:
            out.append((spec, f"{spec.name}.md", spec.name))
        else:
            page = component_path(spec.kind, spec.name, spec.plugin).rsplit("/", 1)[1]
            out.append((spec, page, spec.qualified_name))
    return out


def reference_roles(text: str) -> str:
    """reST cross-reference roles as Markdown code: ``:func:`~a.b``` -> `` `b` ``, ``:class:`x <a.X>``` -> `` `x` ``."""

    def repl(match: re.Match[str]) -> str:
        target = match.group(1).strip()
        if "<" in target and target.endswith(">"):
            target = target[: target.index("<")].strip()
        elif target.startswith("~"):
            target = target[1:].rsplit(".", 1)[-1]
        return f"``{target}``" if "`" in target else f"`{target}`"

    return _ROLE.sub(repl, text)


def docstring_markdown(docstring: str) -> str:
    """A docstring as Markdown: roles become code, Google-style sections become headed lists, ``>>>`` examples and
    ``::`` literal blocks become fenced code."""
    lines = reference_roles(textwrap.dedent(docstring).strip("\n")).splitlines()
    out: list[str] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        section = _SECTION.match(line.strip()) if not line.startswith(" ") else None
        if section:
            block, i = _indented_block(lines, i + 1)
            out += [f"**{section.group(1)}**", ""] + _section_body(section.group(1), block) + [""]
            continue
        if line.rstrip().endswith("::") and not line.startswith(" "):
            block, j = _indented_block(lines, i + 1)
            if block:
                head = line.rstrip()[:-1].rstrip()  # "text::" reads "text:"; a lone "::" disappears
                out += ([head.rstrip(":") + ":", ""] if head.rstrip(":") else []) + _fence("text", block) + [""]
                i = j
                continue
        if line.lstrip().startswith(">>>") and not line.startswith(" "):
            block, i = _doctest_block(lines, i)
            out += _fence("pycon", block) + [""]
            continue
        out.append(line)
        i += 1
    return re.sub(r"\n{3,}", "\n\n", "\n".join(out)).strip("\n")


def _indented_block(lines: list[str], start: int) -> tuple[list[str], int]:
    """The indented (or blank) lines from ``start``, dedented; trailing blank lines stay outside."""
    end = start
    while end < len(lines) and (not lines[end].strip() or lines[end].startswith((" ", "\t"))):
        end += 1
    while end > start and not lines[end - 1].strip():
        end -= 1
    first = start
    while first < end and not lines[first].strip():
        first += 1
    return textwrap.dedent("\n".join(lines[first:end])).splitlines(), end


def _doctest_block(lines: list[str], start: int) -> tuple[list[str], int]:
    end = start
    while end < len(lines) and lines[end].strip():
        end += 1
    return lines[start:end], end


def _fence(language: str, block: list[str]) -> list[str]:
    ticks = "````" if any(line.lstrip().startswith("```") for line in block) else "```"
    return [f"{ticks}{language}", *block, ticks]


def _section_body(title: str, block: list[str]) -> list[str]:
    if title.startswith("Example"):
        out: list[str] = []
        i = 0
        while i < len(block):
            if block[i].lstrip().startswith(">>>"):
                example, i = _doctest_block(block, i)
                out += _fence("pycon", example)
            else:
                out.append(block[i])
                i += 1
        return out
    if title in ("Args", "Arguments", "Parameters", "Keyword Args", "Attributes", "Raises"):
        items: list[str] = []
        for line in block:
            match = _ITEM.match(line) if not line.startswith(" ") else None
            if match:
                names, kind, text = match.groups()
                typed = f" ({kind})" if kind else ""
                written = ", ".join(f"`{name.strip()}`" for name in names.split(","))
                items.append(f"- {written}{typed}: {text}".rstrip())
            elif line.strip() and items:
                items[-1] += " " + line.strip()
            elif line.strip():
                items.append(line.strip())
        return items
    return block


def _markdown_cell(text: str) -> str:
    """One table cell: a single line, pipes escaped outside code spans (the table splits on no pipe inside one)."""
    parts = re.split(r"(`+[^`]*`+)", " ".join(reference_roles(text).split()))
    return "".join(part if part.startswith("`") else part.replace("|", "\\|") for part in parts)


def component_markdown(spec: ComponentSpec, made_as: str | None = None) -> str:
    """The page of one component: summary, how to make it, provider, tags, signature with defaults, arguments
    and docstring. A factory that cannot be imported gets a page that says why (a plugin's broken import must
    not take the site down)."""
    title = f"# {spec.name}" if made_as in (None, spec.name) else f"# {spec.name} ({spec.plugin})"
    call = f'rlte_plugins.make("{spec.kind}", "{made_as or spec.name}", ...)'
    summary = reference_roles(spec.summary) or "(no summary)"
    facts = [
        f"- **Kind:** [{spec.kind}](index.md)",
        f"- **Provider:** {spec.provider} {spec.provider_version} (plugin `{spec.plugin}`)",
        f"- **Qualified name:** `{spec.qualified_name}`",
        f"- **Factory:** `{spec.target}`",
    ]
    if spec.tags:
        facts.append(f"- **Tags:** {', '.join(f'`{t}`' for t in spec.tags)}")
    if spec.defaults:
        registered = ", ".join(f"`{k}={v!r}`" for k, v in spec.defaults.items())
        facts.append(f"- **Registered defaults:** {_markdown_cell(registered)}")
    head = [title, "", summary, "", *facts, "", "```python", "import rlte_plugins", "", call, "```", ""]
    try:
        info = spec.describe(full=True)
    except Exception as exc:  # the page reports it; `rlte plugins` tells the owner how to fix it
        reason = f"{type(exc).__name__}: {exc}".replace("\n", " ")
        body = ['!!! failure "Not importable here"', "", f"    `{spec.target}` could not be imported: {reason}"]
        return "\n".join(head + body) + "\n"
    body = ["## Signature", "", "```python", _wrapped_signature(info["signature"]), "```", ""]
    params = info["parameters"]
    if params:
        helped = any(p.get("help") for p in params)
        body += [
            "## Arguments",
            "",
            '<div class="rlte-arguments" markdown>',
            "",
            "| Argument | Type | Default |" + (" Description |" if helped else ""),
            "|---|---|---|" + ("---|" if helped else ""),
        ]
        for p in params:
            name = f"`{p['name']}`" if p["kind"] not in ("VAR_KEYWORD", "VAR_POSITIONAL") else _star(p)
            default = "required" if p["required"] else ("" if p["default"] is None else f"`{p['default']}`")
            typed = f"`{p['annotation']}`" if p["annotation"] else ""
            row = f"| {name} | {_markdown_cell(typed)} | {_markdown_cell(default)} |"
            body.append(row + (f" {_markdown_cell(p.get('help') or '')} |" if helped else ""))
        body += ["", "</div>", ""]
    docstring = info["docstring"]
    rest = docstring.split("\n\n", 1)[1] if "\n\n" in docstring else ""
    if rest.strip():
        body += ["## Description", "", docstring_markdown(rest), ""]
    return "\n".join(head + body) + "\n"


def _star(parameter: dict[str, Any]) -> str:
    return f"`{'**' if parameter['kind'] == 'VAR_KEYWORD' else '*'}{parameter['name']}`"


def _wrapped_signature(signature: str, width: int = 100) -> str:
    """``name(a, b=1, ...)`` one argument per line when it does not fit on one."""
    if len(signature) <= width:
        return signature
    name, _, args = signature.partition("(")
    args = args[: args.rindex(")")]
    parts, depth, current = [], 0, ""
    for char in args:
        if char == "," and depth == 0:
            parts.append(current.strip())
            current = ""
            continue
        depth += char in "([{"
        depth -= char in ")]}"
        current += char
    if current.strip():
        parts.append(current.strip())
    return name + "(\n" + "".join(f"    {p},\n" for p in parts) + ")"


def _kind_index(kind: str, specs: list[ComponentSpec]) -> str:
    lines = [f"# {KIND_TITLES.get(kind, kind)}", ""]
    lines += [
        f'Every registered `{kind}`, whichever package provides it. Make one with `rlte_plugins.make("{kind}", NAME, '
        f"...)`; `rlte list {kind}` prints the same list.",
        "",
        "| Name | Summary | Provider |",
        "|---|---|---|",
    ]
    for spec, page, made_as in _page_names(specs):
        lines.append(f"| [{made_as}]({page}) | {_markdown_cell(spec.summary)} | {spec.provider} |")
    return "\n".join(lines) + "\n"


def _components_index(by_kind: dict[str, list[ComponentSpec]], registry: Registry) -> str:
    total = sum(len(v) for v in by_kind.values())
    providers = sorted({s.provider for specs in by_kind.values() for s in specs})
    lines = [
        "# Components",
        "",
        f"{total} components from {len(providers)} package{'s' if len(providers) != 1 else ''} "
        f"({', '.join(providers)}). These pages are generated from the registry when the site is built, so every "
        "installed plugin's components appear beside the built-ins; see [writing a plugin](../writing-plugins.md).",
        "",
        "| Kind | Components |",
        "|---|---|",
    ]
    for kind, specs in by_kind.items():
        names = ", ".join(f"[{made_as}]({kind}/{page})" for _, page, made_as in _page_names(specs))
        lines.append(f"| [{KIND_TITLES.get(kind, kind)}]({kind}/index.md) | {names} |")
    problems = plugin_problems(registry)
    if problems:
        lines += ["", "## Plugins that did not load", ""]
        lines += [f"- {_markdown_cell(p.problem)} ({_markdown_cell(p.fix)})" for p in problems]
    return "\n".join(lines) + "\n"


def generate_pages(registry: Registry | None = None) -> list[Page]:
    """Every generated page: ``components/index.md``, one index per kind, one page per component."""
    registry = registry or get_registry()
    by_kind = {kind: registry.specs(kind) for kind in KINDS}
    by_kind = {kind: specs for kind, specs in by_kind.items() if specs}
    pages = [Page("components/index.md", "Components", _components_index(by_kind, registry))]
    for kind, specs in by_kind.items():
        pages.append(Page(f"components/{kind}/index.md", KIND_TITLES.get(kind, kind), _kind_index(kind, specs)))
        pages += [
            Page(f"components/{kind}/{page}", made_as, component_markdown(spec, made_as))
            for spec, page, made_as in _page_names(specs)
        ]
    return pages
