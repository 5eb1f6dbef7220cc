"""The documentation site: pages generated from the registry (third-party plugins included), a strict build, and
every internal link and anchor of the built HTML resolving."""

from __future__ import annotations

import html.parser
import json
import os
import subprocess
import sys
import types
from pathlib import Path
from urllib.parse import unquote, urldefrag, urlparse

import pytest

import rlte_plugins
from rlte_plugins.docsite import component_markdown, docstring_markdown, generate_pages, reference_roles
from rlte_plugins.registry import Registry

ROOT = Path(__file__).resolve().parents[2]

pytest.importorskip("mkdocs", reason="the docs extra is not installed: pip install -e '.[docs]'")


def test_roles_become_code():
    assert reference_roles(":func:`~rlte_plugins.registry.make`") == "`make`"
    assert reference_roles(":class:`the agent <rlte_plugins.Agent>`") == "`the agent`"
    assert reference_roles(":meth:`Agent.train` and :data:`KINDS`") == "`Agent.train` and `KINDS`"


def test_docstring_sections_and_literal_blocks_become_markdown():
    doc = """Summary line.

Args:
    width: how wide,
        continued.
    depth (int): how deep.
    seed, device: as every env.

Layout::

    a -> b

Examples:
    >>> 1 + 1
    2
"""
    md = docstring_markdown(doc)
    assert (
        "**Args**\n\n- `width`: how wide, continued.\n- `depth` (int): how deep.\n- `seed`, `device`: as every env."
        in md
    )
    assert "Layout:\n\n```text\na -> b\n```" in md
    assert "```pycon\n>>> 1 + 1\n2\n```" in md
    assert "    " not in md  # nothing left indented, which Markdown would turn into a code block


def _plugin(**hooks):
    module = types.ModuleType("acme_plugin")
    for name, fn in hooks.items():
        setattr(module, name, rlte_plugins.hookimpl(fn))
    return module


def _encoder(width: int = 4, depth: int = 2):
    """A made-up encoder.

    It is only here to be documented.
    """


def test_pages_cover_every_component_and_name_third_party_providers():
    registry = Registry.from_entry_points()
    extra = Registry.from_plugins(
        [
            (
                "acme",
                _plugin(
                    register_encoders=lambda register: (
                        register("acme_net", _encoder, tags=("vision",)),
                        register("mlp", _encoder),  # clashes with the built-in
                        register("ghost", "acme_missing_module:Ghost", summary="Never importable."),
                    )
                ),
            )
        ]
    )
    for spec in extra.specs():
        registry._specs[spec.kind].append(spec)
    pages = {page.path: page for page in generate_pages(registry)}
    for spec in rlte_plugins.list_components():
        assert f"components/{spec.kind}/{spec.name}.md" in pages
    acme = pages["components/encoder/acme_net.md"].markdown
    assert "- **Tags:** `vision`" in acme and "(plugin `acme`)" in acme
    assert "| `width` | `int` | `4` |" in acme and "It is only here to be documented." in acme
    # the built-in keeps the plain name; the plugin's clash is reached by its qualified name
    assert 'make("encoder", "acme:mlp", ...)' in pages["components/encoder/acme--mlp.md"].markdown
    assert "acme:mlp" in pages["components/encoder/index.md"].markdown
    ghost = pages["components/encoder/ghost.md"].markdown
    assert "could not be imported" in ghost and "acme_missing_module" in ghost


def test_component_page_shows_signature_arguments_and_examples():
    md = component_markdown(rlte_plugins.get_spec("agent", "drqv2"))
    assert md.startswith("# drqv2\n")
    assert "## Signature" in md and "learning_starts" in md
    assert "| `learning_starts` |" in md  # every hyperparameter with its default and help
    assert "```pycon\n>>> import rlte_plugins" in md
    assert ":func:" not in md


class _Links(html.parser.HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.links: list[str] = []
        self.ids: set[str] = set()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if values.get("id"):
            self.ids.add(values["id"])
        for attr in ("href", "src"):
            if values.get(attr) and not (tag == "link" and attr == "href" and values.get("rel") == "canonical"):
                self.links.append(values[attr])


def _page_file(site: Path, url_path: str) -> Path:
    target = site / url_path.lstrip("/")
    return target / "index.html" if target.is_dir() or url_path.endswith("/") else target


@pytest.fixture(scope="module")
def built_site(tmp_path_factory, clash_site) -> tuple[Path, list[dict]]:
    """The site built by ``mkdocs build --strict`` in a subprocess that also sees rlte-example and rlte-clash."""
    site = tmp_path_factory.mktemp("site")
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    build = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-f", str(ROOT / "mkdocs.yml"), "-d", str(site)],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
    )
    assert build.returncode == 0, build.stderr[-4000:]
    listed = subprocess.run(
        [sys.executable, "-m", "rlte_plugins.cli", "list", "--json"],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    return site, json.loads(listed.stdout)


def test_every_registered_component_has_a_page(built_site):
    site, listed = built_site
    providers = {c["provider"] for c in listed}
    assert {"rlte-plugins", "rlte-example", "rlte-clash"} <= providers
    for c in listed:
        plain = site / "components" / c["kind"] / f"{c['name']}.html"
        qualified = site / "components" / c["kind"] / f"{c['plugin']}--{c['name']}.html"
        page = plain if plain.is_file() and c["provider"] in plain.read_text() else qualified
        assert page.is_file(), f"no page for {c['kind']} {c['qualified_name']}"
        text = page.read_text()
        assert c["provider"] in text
        # rlte-clash's `faulty` encoder imports; every component here must, so no page says otherwise
        assert "Not importable here" not in text, page
    # rlte-clash's `mlp` and the two `residual_mlp` encoders each have their own page
    encoders = site / "components" / "encoder"
    for page in ("rlte_clash--mlp", "rlte_example--residual_mlp", "rlte_clash--residual_mlp"):
        assert (encoders / f"{page}.html").is_file(), page


def test_every_internal_link_and_anchor_resolves(built_site):
    site, _ = built_site
    parsed: dict[Path, _Links] = {}

    def parse(path: Path) -> _Links:
        if path not in parsed:
            parser = _Links()
            parser.feed(path.read_text(encoding="utf-8"))
            parsed[path] = parser
        return parsed[path]

    broken = []
    pages = sorted(site.rglob("*.html"))
    assert len(pages) > len(rlte_plugins.list_components())
    for page in pages:
        base = "/" + page.relative_to(site).as_posix()
        for link in parse(page).links:
            url = urlparse(link)
            if url.scheme or url.netloc or link.startswith(("mailto:", "data:", "javascript:")):
                continue
            path, fragment = urldefrag(link)
            target_url = urlparse(f"http://site{base}").path if not path else None
            if path:
                target_url = urlparse(f"http://site{base.rsplit('/', 1)[0]}/{unquote(path)}").path
            target = _page_file(site, os.path.normpath(target_url) + ("/" if target_url.endswith("/") else ""))
            if not target.exists():
                broken.append(f"{base}: {link}")
            elif fragment and target.suffix == ".html" and unquote(fragment) not in parse(target).ids:
                broken.append(f"{base}: {link} (no anchor)")
    assert not broken, "\n".join(broken[:30])
