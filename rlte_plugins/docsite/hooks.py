"""MkDocs hooks (``hooks:`` in ``mkdocs.yml``): the registry's pages join the site and its navigation.

The pages are generated in memory when the site is built, from the registry of the interpreter running MkDocs,
so a plugin installed beside rlte-plugins gets its pages with no file to write.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rlte_plugins.docsite import KIND_TITLES, Page, generate_pages

#: the hand-written pages, in reading order; the navigation lists those that exist
GUIDES: list[tuple[str, str]] = [
    ("Home", "index.md"),
    ("Quick start", "quickstart.md"),
    ("Writing a plugin", "writing-plugins.md"),
    ("The agent contract", "agent-contract.md"),
    ("The fast path", "fast-path.md"),
    ("Evaluation and publishing", "evaluation.md"),
    ("Exploration", "exploration.md"),
    ("Deployment", "deployment.md"),
    ("Scale-out", "scale-out.md"),
]

_pages: list[Page] = []


def on_config(config: Any) -> Any:
    _pages[:] = generate_pages()
    docs = Path(config["docs_dir"])
    pages = [{title: path} for title, path in GUIDES if (docs / path).is_file()]
    top = [page for page in pages if list(page.values())[0] in ("index.md", "quickstart.md")]
    guides = [page for page in pages if page not in top]
    components: list[Any] = ["components/index.md"]
    for kind, title in KIND_TITLES.items():
        pages = [p for p in _pages if p.path.startswith(f"components/{kind}/")]
        if pages:
            index = f"components/{kind}/index.md"
            components.append({title: [index] + [{p.title: p.path} for p in pages if p.path != index]})
    config["nav"] = [*top, {"Guides": guides}, {"Components": components}, {"Python API": "api.md"}]
    return config


def on_files(files: Any, config: Any) -> Any:
    from mkdocs.structure.files import File

    for page in _pages:
        files.append(File.generated(config, page.path, content=page.markdown))
    return files
