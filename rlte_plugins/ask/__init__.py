"""``rlte ask``: an offline copilot. A question is matched against every registered component, the docs and the
recipes with BM25 (:mod:`~rlte_plugins.ask.index`), and answered with a runnable snippet assembled from real
registry names and signatures (:mod:`~rlte_plugins.ask.snippet`), the sources it came from and, when
``RLTE_LLM_URL`` names an OpenAI-compatible endpoint, that model's answer from the same context
(:mod:`~rlte_plugins.ask.llm`).

Examples:
    >>> from rlte_plugins.ask import ask
    >>> result = ask("SAC on pendulum", offline=True)
    >>> result.plan.agent, result.plan.env
    ('sac', 'torch_pendulum')
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any

from rlte_plugins import registry
from rlte_plugins.ask.corpus import DOCS_VARIABLE, Corpus, Document, build_corpus
from rlte_plugins.ask.index import BM25Index, tokenize
from rlte_plugins.ask.snippet import EVALUATION_SEEDS, TASK_ARGUMENTS, Plan, make_plan, render
from rlte_plugins.errors import ConfigError

__all__ = ["Answer", "Retriever", "ask"]

#: characters of a doc section or recipe paragraph sent to the endpoint
CONTEXT_CHARS = 1_500


class Retriever:
    """The corpus and its BM25 index."""

    def __init__(self, corpus: Corpus) -> None:
        self.corpus = corpus
        self.index = BM25Index([doc.terms for doc in corpus.documents])

    def rank(self, question: str) -> list[tuple[float, Document]]:
        """Every document with its score, best first (ties keep the corpus order)."""
        scores = self.index.scores(tokenize(question))
        order = sorted(range(len(scores)), key=lambda i: -scores[i])
        return [(scores[i], self.corpus.documents[i]) for i in order]


_CACHE: dict[tuple[int, str | None], Retriever] = {}


def retriever() -> Retriever:
    """The retriever of the loaded registry and docs folder, built once per process."""
    key = (id(registry.get_registry()), os.environ.get(DOCS_VARIABLE))
    if key not in _CACHE:
        _CACHE.clear()
        _CACHE[key] = Retriever(build_corpus())
    return _CACHE[key]


@dataclasses.dataclass
class Answer:
    """What ``rlte ask`` prints: :meth:`to_json` is ``--json``'s object."""

    question: str
    answer: str
    snippet: str
    plan: Plan
    components: list[dict[str, Any]]
    docs: list[dict[str, Any]]
    recipes: list[dict[str, Any]]
    llm: dict[str, Any] | None
    warnings: list[str]

    def to_json(self) -> dict[str, Any]:
        return {
            "question": self.question,
            "answer": self.answer,
            "snippet": self.snippet,
            "command": self.plan.command,
            "plan": self.plan.to_json(),
            "components": self.components,
            "docs": self.docs,
            "recipes": self.recipes,
            "llm": self.llm,
            "warnings": self.warnings,
        }


def ask(question: str, top: int = 5, offline: bool = False) -> Answer:
    """Answer ``question`` from the registry, docs and recipes; with ``RLTE_LLM_URL`` set (and not ``offline``),
    the endpoint's answer too (``llm``), or a warning saying why there is none."""
    if not isinstance(question, str) or not question.strip():
        raise ConfigError('rlte ask needs a question, e.g. rlte ask "train DrQ-v2 on walker walk from pixels"')
    if not isinstance(top, int) or isinstance(top, bool) or top < 1:
        raise ConfigError(f"rlte ask: --top must be a positive int, got {top!r}")
    found = retriever()
    ranked = found.rank(question)
    specs = [doc.meta["spec"] for _, doc in ranked if doc.source == "component"]
    configs = [(score, doc) for score, doc in ranked if "config" in doc.meta]
    vocabulary = {term for doc in found.corpus.documents if doc.source == "component" for term in doc.terms}
    plan = make_plan(question, specs, configs, vocabulary)
    snippet = render(plan)
    components = []
    for score, doc in ranked:
        if doc.source != "component":
            continue
        kind, name = doc.meta["kind"], doc.meta["name"]
        is_used = plan.qualified.get(kind) == doc.meta["spec"].qualified_name
        if is_used or (score > 0 and len([c for c in components if not c["used"]]) < top):
            spec = doc.meta["spec"]
            components.append({"kind": kind, "name": name, "qualified_name": spec.qualified_name,
                               "summary": spec.summary, "provider": spec.provider, "score": round(score, 3),
                               "used": is_used})  # fmt: skip
    docs = [_source(score, doc) for score, doc in ranked if doc.source == "doc" and score > 0][:top]
    # the packaged recipe the snippet follows is always a source, as the components it makes are
    recipes = [_source(score, doc) for score, doc in ranked if plan.recipe and doc.meta.get("recipe") == plan.recipe]
    recipes += [_source(score, doc) for score, doc in ranked if doc.source == "recipe" and score > 0
                and doc.meta.get("recipe") != plan.recipe][: top - len(recipes)]  # fmt: skip
    warnings = [*found.corpus.warnings, *plan.warnings]
    result = Answer(question, _summary(plan), snippet, plan, components, docs, recipes, None, warnings)
    if not offline:
        from rlte_plugins.ask import llm

        settings = llm.endpoint()
        if settings is not None:
            try:
                text = llm.chat(settings, question, context(result, ranked, top))
                result.llm = {"url": llm.public_url(settings["url"]), "model": settings["model"], "answer": text}
            except llm.LLMUnavailable as exc:
                result.warnings.append(
                    f"warning: {llm.URL_VARIABLE} {llm.public_url(settings['url'])} unreachable ({exc}); "
                    "answered offline"
                )
    return result


def _source(score: float, doc: Document) -> dict[str, Any]:
    out = {"ref": doc.ref, "score": round(score, 3)}
    if "title" in doc.meta:
        out["title"] = doc.meta["title"]
    if "recipe" in doc.meta:
        out["command"] = f"rlte train {doc.meta['recipe']}"
    return out


def _summary(plan: Plan) -> str:
    task = [f"{k}={v!r}" for k, v in plan.env_kwargs.items() if k in TASK_ARGUMENTS]
    seen = "pixels" if plan.pixels else "states"
    parts = [f"train agent {plan.agent!r} on env {plan.env!r} ({', '.join([*task, f'from {seen}'])})"]
    if plan.slots:
        parts.append("with " + ", ".join(f"{kind} {plan.component_names()[kind]!r}" for kind in plan.slots))
    tail = {"export": "; then save it and export its policy to ONNX",
            "evaluate": f"; trained once per seed ({EVALUATION_SEEDS} runs), each run's mean return aggregated with "
                        "the IQM and its stratified-bootstrap interval"}.get(plan.intent, "")  # fmt: skip
    text = "Use rlte_plugins.make: " + " ".join(parts) + tail + "."
    if plan.command:
        text += f" Packaged recipe: `{plan.command}`."
    return text


def context(result: Answer, ranked: list[tuple[float, Document]], top: int) -> str:
    """What the endpoint answers from: components with signatures, doc sections, recipe lines, the snippet."""
    lines = ["Components (kind name signature: summary):"]
    for item in result.components:
        spec = registry.get_spec(item["kind"], item["qualified_name"])
        try:
            signature = str(spec.signature())
        except Exception:  # noqa: BLE001 - a component whose import fails is still named, without its signature
            signature = "(...)"
        lines.append(f"- {item['kind']} {item['name']}{signature}: {item['summary']}")
    by_ref = {doc.ref: doc for _, doc in ranked}
    lines.append("\nDocumentation sections:")
    for item in result.docs:
        lines.append(f"[{item['ref']}]\n{by_ref[item['ref']].text[:CONTEXT_CHARS]}")
    lines.append("\nRecipes and configs:")
    for item in result.recipes:
        lines.append(f"[{item['ref']}]\n{by_ref[item['ref']].text[:CONTEXT_CHARS]}")
    lines.append(f"\nOffline answer: {result.answer}\nOffline snippet:\n```python\n{result.snippet}```")
    return "\n".join(lines)
