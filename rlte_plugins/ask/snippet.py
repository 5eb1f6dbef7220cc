"""From a question and the ranked corpus, a plan (agent, env with its task, observation type, the components the
question names, a packaged recipe when one fits) and the runnable Python snippet that carries it out.

Every name comes from the registry and every keyword argument is checked against the factory's signature
(``spec.signature()``): the snippet imports only the few factories it uses.
"""

from __future__ import annotations

import ast
import dataclasses
import importlib.util
import inspect
import json
import os
import re
from collections.abc import Iterable
from typing import Any

from rlte_plugins.ask.corpus import Document, find_definition
from rlte_plugins.ask.index import stem, word_forms, words
from rlte_plugins.cli.common import yaml_value
from rlte_plugins.errors import ComponentArgumentError
from rlte_plugins.registry import ComponentSpec, get_spec, natural_key

#: component kinds a snippet fills through ``agent.set(...)``, in the order it lists them
SLOT_KINDS = ("encoder", "policy", "distribution", "storage", "augmentation", "reward")
#: slots an agent leaves empty by default: a recipe that fills one is not the plain run of its agent and env
OPTIONAL_SLOTS = ("augmentation", "reward")
#: words that ask for a kind of component without naming one ("an IMPALA encoder", "curiosity-driven exploration")
KIND_WORDS = {
    "encoder": ("encoder", "backbone", "cnn", "resnet"),
    "reward": ("reward", "intrinsic", "curiosity", "bonus", "exploration"),
    "augmentation": ("augmentation", "augment", "augmented"),
    "storage": ("replay", "buffer", "storage"),
    "distribution": ("distribution",),
    "agent": ("agent", "algorithm"),
    "env": ("env", "environment"),
}
PIXEL_WORDS = ("pixel", "pixels", "image", "images", "vision", "visual", "camera")
STATE_WORDS = ("state", "states", "proprioceptive", "proprioception")
EXPORT_WORDS = ("export", "onnx", "deploy", "deployment", "tensorrt")
EVALUATE_WORDS = ("evaluate", "evaluation", "iqm", "rliable", "interquartile", "bootstrap", "aggregate")
#: the env each agent trains on when the question names none: by action kind, then observation type
DEFAULT_ENVS: dict[tuple[str, bool], dict[str, Any]] = {
    ("discrete", False): {"name": "gymnasium", "env_id": "CartPole-v1"},
    ("continuous", False): {"name": "torch_pendulum"},
    ("discrete", True): {"name": "torch_cartpole", "from_pixels": True},
    ("continuous", True): {"name": "torch_pendulum", "from_pixels": True},
}
DEFAULT_AGENT = "ppo"
DEFAULT_FRAMES = 100_000
#: the argument that names the task, for the env families whose makers take one
TASK_ARGUMENTS = ("task", "env_id", "game", "task_id")


def _stems(items: Iterable[str]) -> set[str]:
    return {form for item in items for form in word_forms(item)}


@dataclasses.dataclass
class Plan:
    """What the snippet does; ``recipe``/``recipe_sets`` the packaged recipe that does the same from the CLI."""

    intent: str
    agent: str
    agent_kwargs: dict[str, Any]
    env: str
    env_kwargs: dict[str, Any]
    slots: dict[str, Any]
    total_frames: int
    pixels: bool
    recipe: str | None = None
    recipe_sets: list[str] = dataclasses.field(default_factory=list)
    warnings: list[str] = dataclasses.field(default_factory=list)

    @property
    def command(self) -> str | None:
        """``rlte train NAME --set ...`` when a packaged recipe matches."""
        if self.recipe is None:
            return None
        return " ".join(["rlte train", self.recipe, *(f"--set {s}" for s in self.recipe_sets)])

    def component_names(self) -> dict[str, str]:
        """``{kind: name}`` of what the snippet uses (agent, env and each slot it sets)."""
        out = {"agent": self.agent, "env": self.env}
        out.update({kind: _name_of(value) for kind, value in self.slots.items()})
        return out


def _name_of(value: Any) -> str:
    return value["name"] if isinstance(value, dict) else str(value)


class Question:
    """A question's words and index terms, and the names in it."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.words = words(text)
        self.forms = [word_forms(w) for w in self.words]
        self.terms = {t for forms in self.forms for t in forms}
        compact = [re.sub(r"[^a-z0-9]", "", re.sub(r"-v\d+$", "", w).lower()) for w in self.words]  # no version
        #: runs of 1 to 4 consecutive words written together ("walker walk" -> "walkerwalk")
        self.ngrams = {"".join(compact[i : i + n]) for n in range(1, 5) for i in range(len(compact) - n + 1)}

    def has(self, vocabulary: Iterable[str]) -> bool:
        return bool(_stems(vocabulary) & self.terms)

    def mention(self, name: str, generic: set[str] = frozenset()) -> tuple[int, int] | None:
        """``(parts matched, index of the last word matched)`` when every non-generic part of ``name`` (or the
        whole name written together) is in the question."""
        parts = [stem(p) for p in re.split(r"[-_.]", name.lower()) if p]
        whole = stem(name.lower().replace("_", "").replace("-", "").replace(".", ""))
        wanted = [p for p in parts if p not in generic] or parts
        if whole in self.terms or whole in self.ngrams:
            wanted = [whole]
        elif not set(wanted) <= self.terms:
            return None
        seen = set(wanted) | set(parts)
        last = max((i for i, forms in enumerate(self.forms) if seen & set(forms)), default=len(self.forms) - 1)
        return len(parts) if wanted == [whole] else len(wanted), last

    def followed_by_other_kind(self, index: int, kind: str) -> bool:
        """The word after ``index`` names another kind ("IMPALA *encoder*": the encoder, not the agent)."""
        if index + 1 >= len(self.forms):
            return False
        following = set(self.forms[index + 1])
        return any(k != kind and following & _stems(ws) for k, ws in KIND_WORDS.items())


def named_components(question: Question, specs: list[ComponentSpec]) -> dict[str, ComponentSpec]:
    """The component of each kind that the question names, the most specific name first (``fast_ppo`` over
    ``ppo`` when it says "fast", ``prioritized_replay`` over ``replay``)."""
    by_kind: dict[str, list[tuple[tuple[int, int], ComponentSpec]]] = {}
    env_parts = [p for s in specs if s.kind == "env" for p in {stem(x) for x in re.split(r"[-_.]", s.name)}]
    generic = {p for p in env_parts if env_parts.count(p) > 1}  # "torch", "dummy": shared by several env names
    for spec in specs:
        found = question.mention(spec.name, generic if spec.kind == "env" else set())
        if found is None or question.followed_by_other_kind(found[1], spec.kind):
            continue
        by_kind.setdefault(spec.kind, []).append(((found[0], len(spec.name)), spec))
    return {kind: max(found, key=lambda item: item[0])[1] for kind, found in by_kind.items()}


# -- tasks -------------------------------------------------------------------------------------------------------
def task_choices(env: str) -> list[str]:
    """The task names an env family accepts, where they can be listed without building anything."""
    if env == "dmc" and importlib.util.find_spec("dm_control") is not None:
        os.environ.setdefault("MUJOCO_GL", "egl")  # as the dmc env sets it before dm_control imports mujoco
        from dm_control import suite

        return [f"{domain}_{task}" for domain, task in suite.ALL_TASKS]
    if env == "procgen":
        found = find_definition("rlte_plugins.envs.procgen", "GAMES", 0)
        if found is not None and isinstance(found[1], ast.Assign):
            return list(ast.literal_eval(found[1].value))
    if env == "atari" and importlib.util.find_spec("ale_py") is not None:
        from ale_py.roms import get_all_rom_ids

        return ["".join(part.capitalize() for part in rom.split("_")) for rom in get_all_rom_ids()]  # air_raid: AirRaid
    if env in ("gymnasium", "minigrid") and importlib.util.find_spec("gymnasium") is not None:
        import gymnasium

        if env == "minigrid" and importlib.util.find_spec("minigrid") is not None:
            import minigrid  # noqa: F401 - registers the MiniGrid and BabyAI ids

        grids = [i for i in gymnasium.envs.registry if i.startswith(("MiniGrid-", "BabyAI-"))]
        return grids if env == "minigrid" else [i for i in gymnasium.envs.registry if i not in grids]
    return []


def match_task(question: Question, choices: list[str], family: str, strict: bool = False) -> str | None:
    """The task the question names: the longest alias written in it (without version, without the family's
    prefix: ``DoorKey 8x8`` names ``MiniGrid-DoorKey-8x8-v0``), the latest version among equals.

    ``strict`` (the question names no env family): an alias without the prefix counts only when it has two parts
    or more, so that a plain word ("open", "pickup") does not pick a BabyAI level.
    """
    best: tuple[int, list[Any], str] | None = None
    for choice in choices:
        base = re.sub(r"-v\d+$", "", choice.split("/")[-1])
        aliases = {re.sub(r"[^a-z0-9]", "", base.lower())}
        parts = base.split("-")
        prefixed = len(parts) > 1 and parts[0].lower() in (family, "minigrid", "babyai")
        if prefixed and (not strict or len(parts) > 2):
            aliases.add(re.sub(r"[^a-z0-9]", "", "".join(parts[1:]).lower()))
        hits = [len(a) for a in aliases if a and a in question.ngrams]
        if hits:
            key = (max(hits), natural_key(choice), choice)
            if best is None or key[:2] > best[:2]:
                best = key
    return best[2] if best else None


def docstring_example(spec: ComponentSpec, argument: str) -> str | None:
    """``argument``'s value in the factory docstring's examples (``task="cartpole_balance"``)."""
    found = re.search(rf"""\b{argument}=["']([^"']+)["']""", spec.docstring())
    return found.group(1) if found else None


# -- the plan ----------------------------------------------------------------------------------------------------
def make_plan(question_text: str, components: list[ComponentSpec], configs: list[tuple[float, Document]]) -> Plan:
    """Choose what the snippet makes.

    ``components`` are every registered component, best BM25 match first; ``configs`` the packaged recipe
    configs with their scores.
    """
    question = Question(question_text)
    warnings: list[str] = []
    named = named_components(question, components)
    intent = "export" if question.has(EXPORT_WORDS) else "evaluate" if question.has(EVALUATE_WORDS) else "train"
    # a kind asked for by a word ("an IMPALA encoder"): its best-ranked component
    for kind in SLOT_KINDS:
        if kind not in named and kind in KIND_WORDS and question.has(KIND_WORDS[kind]):
            ranked = [s for s in components if s.kind == kind]
            if ranked and _relevant(ranked[0], question):
                named[kind] = ranked[0]
    env_spec = named.get("env")
    env_kwargs: dict[str, Any] = {}
    if env_spec is None:
        env_spec, env_kwargs = _env_from_task(question)
    agent_spec = named.get("agent")

    config_doc = _matching_config(named, agent_spec, env_spec, configs)
    config = config_doc.meta["config"] if config_doc is not None else {}
    if agent_spec is None:
        agent_spec = get_spec("agent", _section(config, "agent").get("name", DEFAULT_AGENT))
    agent_factory = agent_spec.load()
    agent_class = getattr(agent_factory, "agent_class", agent_factory)
    action_kinds = {"discrete", "continuous"} & set(agent_spec.tags)
    pixels = question.has(PIXEL_WORDS) or (
        not question.has(STATE_WORDS)
        and any("pixels" in s.tags and "vector" not in s.tags for s in [agent_spec, *named.values()] if s.kind != "env")
    )
    if env_spec is None:
        if config:
            env_spec = get_spec("env", _section(config, "env")["name"])
        else:
            default = DEFAULT_ENVS[("discrete" if "discrete" in action_kinds or not action_kinds else "continuous",
                                    pixels)]  # fmt: skip
            env_spec, env_kwargs = get_spec("env", default["name"]), {k: v for k, v in default.items() if k != "name"}
    if not config:  # nothing named ties a recipe to the question, but one may train this very agent and env
        config_doc = next(
            (doc for _, doc in configs if _uses(doc, agent_spec.name, env_spec.name) and _asked(doc, named)), None
        )
        config = config_doc.meta["config"] if config_doc is not None else {}
    from_config = {k: v for k, v in _section(config, "env").items() if k != "name"}
    if _section(config, "env").get("name") == env_spec.name:
        env_kwargs = {**from_config, **env_kwargs}  # the recipe's env section, then what the question says
    env_kwargs = _env_arguments(question, env_spec, env_kwargs, configs, pixels, warnings)

    # a recipe fits when it trains the same agent on the same env family
    recipe, recipe_sets, slots, agent_kwargs, total_frames = None, [], {}, {}, DEFAULT_FRAMES
    if config_doc is not None and _uses(config_doc, agent_spec.name, env_spec.name):
        recipe = config_doc.meta["recipe"]
        recipe_sets = [f"env.{k}={yaml_value(v)}" for k, v in env_kwargs.items() if from_config.get(k) != v]
        agent_kwargs = {k: v for k, v in _section(config, "agent").items() if k != "name"}
        slots = {k: _section(config, k) for k in SLOT_KINDS if k in config and config[k] is not None}
        total_frames = int(_section(config, "train").get("total_frames", DEFAULT_FRAMES))
    for kind in SLOT_KINDS:
        spec = named.get(kind)
        if spec is None:
            continue
        if kind not in getattr(agent_class, "slots", {}):
            warnings.append(f"agent {agent_spec.name!r} has no {kind} slot: {spec.name!r} left out")
            continue
        if _name_of(slots.get(kind, {"name": None})) != spec.name:
            slots[kind] = spec.name
            if recipe is not None:  # the whole section: the recipe's arguments were its component's
                recipe_sets.append(f"{kind}={spec.name}")
    inherent = "pixels" in env_spec.tags and "vector" not in env_spec.tags  # Atari, Procgen: pixels only
    sees_pixels = bool(env_kwargs.get("from_pixels")) or inherent
    if sees_pixels and "encoder" not in slots:
        encoder = _pixel_encoder(getattr(agent_class, "slots", {}), components)
        if encoder is not None:
            slots["encoder"] = encoder
    agent_kwargs = _accepted(agent_spec, agent_kwargs, warnings)
    slots = {k: (_accepted(get_spec(k, _name_of(v)), v, warnings) if isinstance(v, dict) else v)
             for k, v in slots.items()}  # fmt: skip
    _check_action_kinds(agent_spec, env_spec, warnings)
    return Plan(
        intent,
        agent_spec.name,
        agent_kwargs,
        env_spec.name,
        env_kwargs,
        slots,
        total_frames,
        sees_pixels,
        recipe,
        recipe_sets,
        warnings,
    )


def _env_arguments(
    question: Question,
    spec: ComponentSpec,
    kwargs: dict[str, Any],
    configs: list[tuple[float, Document]],
    pixels: bool,
    warnings: list[str],
) -> dict[str, Any]:
    """The env's keyword arguments: the task the question names (else the one a recipe or the maker's own example
    uses, where the maker needs one), ``from_pixels`` where the maker has it, nothing the maker does not take."""
    kwargs = dict(kwargs)
    params = spec.signature().parameters
    task_argument = next((a for a in TASK_ARGUMENTS if a in params), None)
    if task_argument is not None:
        strict = question.mention(spec.name) is None  # the family unnamed: only unambiguous task names count
        named_task = match_task(question, task_choices(spec.name), spec.name, strict)
        if named_task is not None:
            kwargs[task_argument] = named_task
        elif task_argument not in kwargs and params[task_argument].default is inspect.Parameter.empty:
            fallback = _task_from_configs(spec.name, task_argument, configs) or docstring_example(spec, task_argument)
            if fallback is None:
                raise ComponentArgumentError(
                    f"env {spec.name!r} needs {task_argument}=... and the question names none: name one in it"
                )
            kwargs[task_argument] = fallback
    if "from_pixels" in params:
        if pixels:
            kwargs["from_pixels"] = True
        elif question.has(STATE_WORDS):
            kwargs.pop("from_pixels", None)
    elif pixels and question.has(PIXEL_WORDS) and "pixels" not in spec.tags:
        warnings.append(f"env {spec.name!r} has no pixel observations: the snippet trains on its states")
    return _accepted(spec, kwargs, warnings)


def _relevant(spec: ComponentSpec, question: Question) -> bool:
    """A component picked for a kind word must share a word with the question beyond that kind word."""
    from rlte_plugins.ask.corpus import static_description

    docstring, _ = static_description(spec)
    own = _stems([spec.name, spec.summary, docstring, *spec.tags]) - _stems(KIND_WORDS.get(spec.kind, ()))
    return bool(own & question.terms)


def _env_from_task(question: Question) -> tuple[ComponentSpec | None, dict[str, Any]]:
    """An env family whose task list holds a task the question names ("walker walk": ``dmc``)."""
    for family in ("dmc", "minigrid", "procgen", "atari", "gymnasium"):
        task = match_task(question, task_choices(family), family, strict=True)
        if task is not None:
            spec = get_spec("env", family)
            argument = next(a for a in TASK_ARGUMENTS if a in spec.signature().parameters)
            return spec, {argument: task}
    return None, {}


def _matching_config(
    named: dict[str, ComponentSpec],
    agent: ComponentSpec | None,
    env: ComponentSpec | None,
    configs: list[tuple[float, Document]],
) -> Document | None:
    """The packaged config that uses the most of what the question names, and never another agent or env than
    the ones it names; ``None`` when none uses any of it."""
    best: tuple[int, float, Document] | None = None
    for score, doc in configs:
        config = doc.meta["config"]
        uses = {kind: _section(config, kind).get("name") for kind in ("agent", "env", *SLOT_KINDS)}
        if (agent and uses["agent"] != agent.name) or (env and uses["env"] != env.name) or not _asked(doc, named):
            continue
        hits = sum(uses.get(kind) == spec.name for kind, spec in named.items())
        if hits and (best is None or (hits, score) > best[:2]):
            best = (hits, score, doc)
    return best[2] if best else None


def _pixel_encoder(agent_slots: dict[str, Any], components: list[ComponentSpec]) -> str | None:
    """The best-ranked image encoder when the agent's default encoder reads vectors only (PPO's ``mlp``)."""
    default = agent_slots.get("encoder")
    if default in (None, "auto") or "pixels" in get_spec("encoder", _name_of(default)).tags:
        return None
    images = [s for s in components if s.kind == "encoder" and "pixels" in s.tags and "vector" not in s.tags]
    return images[0].name if images else None


def _asked(doc: Document, named: dict[str, ComponentSpec]) -> bool:
    """The recipe adds no optional component (an intrinsic reward, an augmentation) that its agent goes without by
    default and the question did not name (DrQ-v2's random shift is its own; PPO's RND is an addition)."""
    config = doc.meta["config"]
    factory = get_spec("agent", _section(config, "agent").get("name", DEFAULT_AGENT)).load()
    defaults = getattr(getattr(factory, "agent_class", factory), "slots", {})
    return not any(
        _section(config, kind) and defaults.get(kind) is None for kind in OPTIONAL_SLOTS if kind not in named
    )


def _uses(doc: Document, agent: str, env: str) -> bool:
    config = doc.meta["config"]
    return _section(config, "agent").get("name") == agent and _section(config, "env").get("name") == env


def _task_from_configs(env: str, argument: str, configs: list[tuple[float, Document]]) -> str | None:
    for _, doc in configs:
        section = _section(doc.meta["config"], "env")
        if section.get("name") == env and argument in section:
            return str(section[argument])
    return None


def _section(config: dict[str, Any], key: str) -> dict[str, Any]:
    value = config.get(key)
    if isinstance(value, str):
        return {"name": value}
    return dict(value) if isinstance(value, dict) else {}


def _accepted(spec: ComponentSpec, kwargs: dict[str, Any], warnings: list[str]) -> dict[str, Any]:
    """``kwargs`` that the factory's signature takes (a ``name`` key kept); the rest dropped with a warning."""
    params = spec.signature().parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return dict(kwargs)
    out = {}
    for key, value in kwargs.items():
        if key == "name" or key in params:
            out[key] = value
        else:
            warnings.append(f"{spec.kind} {spec.name!r} takes no {key!r}: left out")
    return out


def _check_action_kinds(agent: ComponentSpec, env: ComponentSpec, warnings: list[str]) -> None:
    kinds = {"discrete", "continuous"}
    wants, has = kinds & set(agent.tags), kinds & set(env.tags)
    if wants and has and not wants & has:
        warnings.append(f"agent {agent.name!r} acts on {'/'.join(sorted(wants))} actions and env {env.name!r} "
                        f"has {'/'.join(sorted(has))} ones: making the agent will refuse it")  # fmt: skip


# -- the snippet ---------------------------------------------------------------------------------------------------
def literal(value: Any) -> str:
    """``value`` as a Python literal, strings in double quotes (as the project writes them).

    Examples:
        >>> print(literal({"name": "mlp", "num_cells": [64, 64], "features": None}))
        {"name": "mlp", "num_cells": [64, 64], "features": None}
    """
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, dict):
        return "{" + ", ".join(f"{literal(k)}: {literal(v)}" for k, v in value.items()) + "}"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(literal(v) for v in value) + "]"
    return repr(value)


def call(head: str, positional: list[str], kwargs: dict[str, Any], width: int = 116) -> str:
    """``head(positional..., key=value...)`` on one line, or one argument a line when longer than ``width``."""
    args = [*positional, *(f"{k}={literal(v)}" for k, v in kwargs.items())]
    line = f"{head}({', '.join(args)})"
    if len(line) <= width:
        return line
    return f"{head}(\n" + "".join(f"    {a},\n" for a in args) + ")"


def render(plan: Plan) -> str:
    """The plan as Python that runs as it is: imports, the env, the agent and its components, then the one training
    line ``agent.train(...)``, then what the question asks of the trained agent (evaluate, export)."""
    lines = ["import rlte_plugins"]
    if plan.intent == "evaluate":
        lines += ["import numpy as np", "from rlte_plugins import evaluation as ev"]
    if plan.intent == "export":
        lines.append("from rlte_plugins.export import export_onnx")
    lines.append("")
    if plan.command:
        lines.append(f"# the same run from the command line: {plan.command}")
    lines.append(call("env = rlte_plugins.make", ['"env"', literal(plan.env)], plan.env_kwargs))
    lines.append(call("agent = rlte_plugins.make", ['"agent"', literal(plan.agent), "env=env"], plan.agent_kwargs))
    if plan.slots:
        lines.append(call("agent.set", [], plan.slots))
    lines.append(f"agent.train({plan.total_frames:_})")
    if plan.intent == "export":
        lines += [
            'agent.save("agent.pt")  # `rlte export agent.pt --check` does the same from the command line',
            'result = export_onnx(agent, "policy.onnx")  # checked against PyTorch with onnxruntime',
            "print(result)",
        ]
    elif plan.intent == "evaluate":
        lines += [
            "returns = agent.evaluate(episodes=10)",
            "scores = np.asarray(returns, dtype=float)[:, None]  # [runs, tasks]: each episode a run of one task",
            f"point, interval = ev.get_interval_estimates({{{literal(plan.agent)}: scores}}, ev.aggregate_iqm, "
            "reps=2000)",
            f'print("IQM", point[{literal(plan.agent)}], interval[{literal(plan.agent)}])',
        ]
    else:
        lines.append("print(agent.evaluate(episodes=10))")
    return "\n".join(lines) + "\n"
