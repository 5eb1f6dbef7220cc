"""What ``rlte ask`` searches: every registered component, the docs' markdown sections, the recipes' code and the
packaged recipe configs, each a :class:`Document` of index terms.

Components are read statically (summary, tags, the factory's docstring and parameter names from its source), so
building the corpus imports no component, torch or env backend.
"""

from __future__ import annotations

import ast
import dataclasses
import inspect
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import rlte_plugins
from rlte_plugins.ask.index import tokenize
from rlte_plugins.registry import ComponentSpec, docstrings_in, list_components, module_tree

PACKAGE_DIR = Path(rlte_plugins.__file__).resolve().parent
#: the source checkout around the package, when it is one (an installed wheel has no docs/ or recipes/ beside it)
ROOT = PACKAGE_DIR.parent
DOCS_VARIABLE = "RLTE_DOCS_DIR"
#: how many times a component's name counts among its terms: a name in the question is the strongest evidence
NAME_WEIGHT = 3


@dataclasses.dataclass(frozen=True)
class Document:
    """One retrievable unit: ``source`` is ``"component"``, ``"doc"`` or ``"recipe"``; ``ref`` is how sources
    cite it (``agent drqv2``, ``docs/scale-out.md#ray``, ``recipes/drqv2_dmc.py:58``)."""

    source: str
    ref: str
    text: str
    terms: tuple[str, ...]
    meta: dict[str, Any] = dataclasses.field(default_factory=dict, compare=False)


@dataclasses.dataclass
class Corpus:
    """The documents and what could not be read (one warning line each)."""

    documents: list[Document]
    warnings: list[str]


def build_corpus() -> Corpus:
    """Every document ``rlte ask`` searches, in a stable order."""
    warnings: list[str] = []
    documents = [component_document(spec) for spec in list_components()]
    documents += doc_documents(warnings)
    documents += recipe_documents(warnings)
    return Corpus(documents, warnings)


# -- components ---------------------------------------------------------------------------------------------
def component_document(spec: ComponentSpec) -> Document:
    """A component's name, kind, summary, tags, parameter names and docstring, read without importing it."""
    docstring, parameters = static_description(spec)
    name_terms = tokenize(spec.name) * NAME_WEIGHT
    text = f"{spec.kind} {spec.name}: {spec.summary}".strip()
    body = " ".join([spec.kind, spec.summary, " ".join(spec.tags), " ".join(parameters), docstring])
    return Document(
        "component",
        f"{spec.kind} {spec.qualified_name if spec.plugin != 'rlte_plugins' else spec.name}",
        text,
        tuple(name_terms + tokenize(body)),
        {"kind": spec.kind, "name": spec.name, "spec": spec, "parameters": parameters, "docstring": docstring},
    )


def static_description(spec: ComponentSpec) -> tuple[str, list[str]]:
    """``(docstring, parameter names)`` of a component's factory, from its source for lazy ``module:attr``
    targets, from the object itself for factories registered as callables (already imported)."""
    if not isinstance(spec.factory, str):
        try:
            names = list(inspect.signature(spec.factory).parameters)
        except (TypeError, ValueError):
            names = []
        return inspect.getdoc(spec.factory) or "", names
    module, _, attr = spec.factory.partition(":")
    docstring = docstrings_in(module).get(attr, "")
    return docstring, _unique(_static_parameters(module, attr, depth=0))


def _unique(names: list[str]) -> list[str]:
    return [n for i, n in enumerate(names) if n not in names[:i] and n not in ("self", "cls")]


def find_definition(module: str, name: str, depth: int) -> tuple[str, ast.AST] | None:
    """The top-level definition of ``name`` seen from ``module``: defined there, or imported into it."""
    tree = module_tree(module)
    if tree is None or depth > 6:
        return None
    for node in tree.body:
        if isinstance(node, (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.name == name:
            return module, node
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == name for t in node.targets):
            return module, node
    for node in tree.body:
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                if (alias.asname or alias.name) == name:
                    return find_definition(node.module, alias.name, depth + 1)
    return None


def _static_parameters(module: str, name: str, depth: int) -> list[str]:
    found = find_definition(module, name.split(".")[0], depth)
    if found is None:
        return []
    where, node = found
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
        args = node.args
        return [a.arg for a in [*args.posonlyargs, *args.args, *args.kwonlyargs]]
    if isinstance(node, ast.Assign):
        # a preset made from a class (``fast_ppo = PPO.make_preset(...)``) takes that class's arguments
        func = node.value.func if isinstance(node.value, ast.Call) else None
        if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name):
            return _static_parameters(where, func.value.id, depth + 1)
        return []
    assert isinstance(node, ast.ClassDef)
    return _class_parameters(where, node, depth)


def _class_parameters(module: str, node: ast.ClassDef, depth: int) -> list[str]:
    """``__init__``'s arguments (the class's or its first base's that has one) and the fields of a ``Config``
    dataclass the class declares (how agents declare their options)."""
    names: list[str] = []
    for item in node.body:
        if isinstance(item, ast.FunctionDef) and item.name == "__init__":
            args = item.args
            names += [a.arg for a in [*args.args, *args.kwonlyargs]]
    config = _config_class(module, node, depth)
    if config is not None:
        names += _dataclass_fields(*config, depth + 1)
    if not any(isinstance(i, ast.FunctionDef) and i.name == "__init__" for i in node.body):
        for base in node.bases:
            if isinstance(base, ast.Name):
                names += _static_parameters(module, base.id, depth + 1)
                break
    return names


def _config_class(module: str, node: ast.ClassDef, depth: int) -> tuple[str, ast.ClassDef] | None:
    for item in node.body:
        if isinstance(item, ast.ClassDef) and item.name == "Config":
            return module, item
        target = item.target if isinstance(item, ast.AnnAssign) else None
        if isinstance(item, ast.Assign) and len(item.targets) == 1:
            target = item.targets[0]
        value = getattr(item, "value", None)
        if isinstance(target, ast.Name) and target.id == "Config" and isinstance(value, ast.Name):
            found = find_definition(module, value.id, depth + 1)
            if found is not None and isinstance(found[1], ast.ClassDef):
                return found[0], found[1]
    return None


def _dataclass_fields(module: str, node: ast.ClassDef, depth: int) -> list[str]:
    if depth > 8:
        return []
    names = [
        item.target.id
        for item in node.body
        if isinstance(item, ast.AnnAssign)
        and isinstance(item.target, ast.Name)
        and "ClassVar" not in ast.unparse(item.annotation)
    ]
    for base in node.bases:
        if isinstance(base, ast.Name):
            found = find_definition(module, base.id, depth + 1)
            if found is not None and isinstance(found[1], ast.ClassDef):
                names += _dataclass_fields(found[0], found[1], depth + 1)
        elif isinstance(base, ast.Attribute) and base.attr == "Config" and isinstance(base.value, ast.Name):
            owner = find_definition(module, base.value.id, depth + 1)  # ``class Config(DAAC.Config)``
            if owner is not None and isinstance(owner[1], ast.ClassDef):
                config = _config_class(owner[0], owner[1], depth + 1)
                if config is not None:
                    names += _dataclass_fields(*config, depth + 1)
    return names


# -- docs -----------------------------------------------------------------------------------------------------
def docs_dir(warnings: list[str]) -> Path | None:
    """``$RLTE_DOCS_DIR``, else the checkout's ``docs/``; ``None`` (and a warning) when neither exists."""
    configured = os.environ.get(DOCS_VARIABLE)
    if configured:
        path = Path(configured).expanduser()
        if path.is_dir():
            return path
        warnings.append(f"{DOCS_VARIABLE}={configured} is not a directory: answered without the docs")
        return None
    if (ROOT / "docs").is_dir():
        return ROOT / "docs"
    warnings.append(f"no docs folder found (set {DOCS_VARIABLE} to a folder of .md guides): answered without the docs")
    return None


def doc_documents(warnings: list[str]) -> list[Document]:
    """One document per markdown section of the docs folder, and of the checkout's README.md."""
    files = []
    folder = docs_dir(warnings)
    if folder is not None:
        files += sorted(folder.glob("*.md"))
    if (ROOT / "README.md").is_file():
        files.append(ROOT / "README.md")
    return [doc for path in files for doc in markdown_sections(path)]


def display_path(path: Path) -> str:
    """``path`` relative to the checkout when it lies inside it, else as given."""
    try:
        return path.resolve().relative_to(ROOT).as_posix()
    except ValueError:
        return str(path)


def slug(heading: str) -> str:
    """GitHub's anchor of a heading.

    Examples:
        >>> slug("Write a plugin: the `register` hook (v2)")
        'write-a-plugin-the-register-hook-v2'
    """
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def markdown_sections(path: Path) -> Iterator[Document]:
    """``path`` split at its headings (not at ``#`` lines inside code fences); each section cites ``file#anchor``."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError):
        return
    shown = display_path(path)
    seen: dict[str, int] = {}
    fenced = False
    title, anchor, start, body = path.stem, "", 1, []

    def section() -> Document | None:
        text = "\n".join(body).strip()
        if not text:
            return None
        ref = f"{shown}#{anchor}" if anchor else shown
        terms = tokenize(title) * 2 + tokenize(text)  # a heading says what its section is about
        return Document("doc", ref, text, tuple(terms), {"title": title, "line": start, "path": shown})

    for number, line in enumerate(lines, 1):
        if line.lstrip().startswith("```"):
            fenced = not fenced
        heading = re.match(r"^(#{1,6})\s+(.+?)\s*#*\s*$", line) if not fenced else None
        if heading:
            doc = section()
            if doc is not None:
                yield doc
            title = heading.group(2)
            base = slug(title)
            count = seen.get(base, 0)
            seen[base] = count + 1
            anchor, start, body = (base if count == 0 else f"{base}-{count}"), number, [line]
        else:
            body.append(line)
    doc = section()
    if doc is not None:
        yield doc


# -- recipes ----------------------------------------------------------------------------------------------------
def recipe_documents(warnings: list[str]) -> list[Document]:
    """One document per packaged config (``rlte train NAME``) and per paragraph of the checkout's recipes."""
    from rlte_plugins.training.config import parse_yaml, recipes_dir

    out: list[Document] = []
    for path in sorted(recipes_dir().glob("*.yaml")):
        text = path.read_text(encoding="utf-8")
        try:
            config = parse_yaml(text)
        except Exception as exc:  # noqa: BLE001 - one unreadable config must not hide the others
            warnings.append(f"{display_path(path)} could not be read ({exc}): left out")
            continue
        name = path.stem
        terms = tokenize(name) * NAME_WEIGHT + tokenize(text)
        ref = f"{display_path(path)}:1"
        out.append(Document("recipe", ref, f"rlte train {name}\n{text}", tuple(terms),
                            {"recipe": name, "config": config, "path": display_path(path), "line": 1}))  # fmt: skip
    folder = ROOT / "recipes"
    for path in sorted(folder.glob("*.py")) if folder.is_dir() else []:
        out += recipe_paragraphs(path)
    return out


def recipe_paragraphs(path: Path) -> Iterator[Document]:
    """A recipe's paragraphs (runs of non-blank lines), each citing ``file:line``; the file's name and first
    docstring line count in each, so a paragraph is found by what its recipe is about."""
    lines = path.read_text(encoding="utf-8").splitlines()
    shown = display_path(path)
    about = tokenize(path.stem) + tokenize(lines[0] if lines else "")
    start, block = 0, []
    for number, line in enumerate([*lines, ""], 1):
        if line.strip():
            if not block:
                start = number
            block.append(line)
            continue
        if block and not all(re.match(r"\s*(from \S+ )?import ", b) for b in block):
            text = "\n".join(block)
            yield Document("recipe", f"{shown}:{start}", text, tuple(about + tokenize(text)),
                           {"path": shown, "line": start})  # fmt: skip
        block = []
