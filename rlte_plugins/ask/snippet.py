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
from rlte_plugins.ask.index import STOP_WORDS, stem, tokenize, word_forms, words
from rlte_plugins.cli.common import yaml_value
from rlte_plugins.errors import AmbiguousComponentError
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
#: agents that fit an env's action kind, tried in order (one of the same family, on- or off-policy, first)
FITTING_AGENTS = {"continuous": ("sac", "td3", "ddpg"), "discrete": ("dqn", "ppo")}
#: independent training runs of the evaluate snippet: rliable's runs are seeds, not episodes of one run
EVALUATION_SEEDS = 5
#: a task id written in the question ("Breakout-v5", "ALE/Pong-v5") for env families whose tasks cannot be listed
TASK_ID = re.compile(r"[A-Za-z][A-Za-z0-9/-]*-v\d+")
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
    #: ``{kind: qualified name}`` of every component the snippet makes (what the sources mark as used)
    qualified: dict[str, str] = dataclasses.field(default_factory=dict)

    @property
    def command(self) -> str | None:
        """``rlte train NAME --set ...`` when a packaged recipe matches."""
        if self.recipe is None:
            return None
        return " ".join(["rlte train", self.recipe, *(f"--set {s}" for s in self.recipe_sets)])

    def component_names(self) -> dict[str, str]:
        """``{kind: name}`` of what the snippet uses (agent, env and each slot it sets), as the snippet writes it."""
        out = {"agent": self.agent, "env": self.env}
        out.update({kind: _name_of(value) for kind, value in self.slots.items()})
        return out

    def to_json(self) -> dict[str, Any]:
        """``--json``'s ``plan``: what the snippet makes, without parsing it."""
        return {
            "agent": self.agent,
            "env": self.env,
            "env_kwargs": self.env_kwargs,
            "agent_kwargs": self.agent_kwargs,
            "components": self.slots,
        }


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
        last = max(self.covered(name), default=len(self.forms) - 1)
        return len(parts) if wanted == [whole] else len(wanted), last

    def covered(self, name: str) -> set[int]:
        """The indices of the question's words that ``name`` (a component or task name) accounts for."""
        terms = {stem(p) for p in re.split(r"[-_.]", name.lower()) if p} | set(tokenize(name))
        return {i for i, forms in enumerate(self.forms) if terms & set(forms)}

    def followed_by_other_kind(self, index: int, kind: str) -> bool:
        """The word after ``index`` names another kind ("IMPALA *encoder*": the encoder, not the agent)."""
        if index + 1 >= len(self.forms):
            return False
        following = set(self.forms[index + 1])
        return any(k != kind and following & _stems(ws) for k, ws in KIND_WORDS.items())


def named_components(
    question: Question, specs: list[ComponentSpec], warnings: list[str] | None = None
) -> dict[str, ComponentSpec]:
    """The component of each kind that the question names, the most specific name first (``fast_ppo`` over
    ``ppo`` when it says "fast", ``prioritized_replay`` over ``replay``); a warning for each kind of which the
    question names several (other words than the chosen one's: "compare PPO and SAC")."""
    by_kind: dict[str, list[tuple[tuple[int, int], ComponentSpec]]] = {}
    env_parts = [p for s in specs if s.kind == "env" for p in {stem(x) for x in re.split(r"[-_.]", s.name)}]
    generic = {p for p in env_parts if env_parts.count(p) > 1}  # "torch", "dummy": shared by several env names
    for spec in specs:
        found = question.mention(spec.name, generic if spec.kind == "env" else set())
        if found is None or question.followed_by_other_kind(found[1], spec.kind):
            continue
        by_kind.setdefault(spec.kind, []).append(((found[0], len(spec.name)), spec))
    chosen = {kind: max(found, key=lambda item: item[0])[1] for kind, found in by_kind.items()}
    for kind, found in by_kind.items():
        words_used = question.covered(chosen[kind].name)
        others = sorted({s.name for _, s in found if not question.covered(s.name) <= words_used})
        if others and warnings is not None:
            warnings.append(f"the question names several {kind}s ({', '.join(map(repr, others))} too): "
                            f"the snippet uses {chosen[kind].name!r} only")  # fmt: skip
    return chosen


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
            key = (max(hits), "/" not in choice, natural_key(choice), choice)  # "Pendulum-v1" over "phys2d/..."
            if best is None or key[:3] > best[:3]:
                best = key
    return best[3] if best else None


def docstring_example(spec: ComponentSpec, argument: str) -> str | None:
    """``argument``'s value in the factory docstring's examples (``task="cartpole_balance"``)."""
    found = re.search(rf"""\b{argument}=["']([^"']+)["']""", spec.docstring())
    return found.group(1) if found else None


# -- the plan ----------------------------------------------------------------------------------------------------
def make_plan(
    question_text: str,
    components: list[ComponentSpec],
    configs: list[tuple[float, Document]],
    vocabulary: Iterable[str] = (),
) -> Plan:
    """Choose what the snippet makes.

    ``components`` are every registered component, best BM25 match first; ``configs`` the packaged recipe
    configs with their scores; ``vocabulary`` the index terms of every component (a capitalised word of the
    question outside it and outside the chosen task gets a warning).
    """
    question = Question(question_text)
    warnings: list[str] = []
    named = named_components(question, components, warnings)
    intent = "export" if question.has(EXPORT_WORDS) else "evaluate" if question.has(EVALUATE_WORDS) else "train"
    # a kind asked for by a word ("an IMPALA encoder"): its best-ranked component
    for kind in SLOT_KINDS:
        if kind not in named and kind in KIND_WORDS and question.has(KIND_WORDS[kind]):
            ranked = [s for s in components if s.kind == kind]
            if ranked and _relevant(ranked[0], question):
                named[kind] = ranked[0]
    asked_agent = named.get("agent")
    env_spec, env_kwargs = _choose_env(question, named.get("env"), asked_agent)
    env_asked = env_spec is not None
    agent_spec = asked_agent
    if agent_spec is not None and env_spec is not None:
        agent_spec = _fitting_agent(agent_spec, env_spec, warnings)
    chosen = {**named, **({"agent": agent_spec} if agent_spec is not None else {})}

    config_doc = _matching_config(chosen, agent_spec, env_spec, configs)
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
            env_spec, env_kwargs = _default_env(action_kinds, pixels)
    if not config:  # nothing named ties a recipe to the question, but one may train this very agent and env
        config_doc = next(
            (doc for _, doc in configs if _uses(doc, agent_spec.name, env_spec.name) and _asked(doc, chosen)), None
        )
        config = config_doc.meta["config"] if config_doc is not None else {}
    from_config = {k: v for k, v in _section(config, "env").items() if k != "name"}
    if _section(config, "env").get("name") == env_spec.name:
        env_kwargs = {**from_config, **env_kwargs}  # the recipe's env section, then what the question says
    env_kwargs, missing = _env_arguments(question, env_spec, env_kwargs, configs, pixels, components, warnings)
    if missing:
        # a snippet must run: train on a default env and say what to fill in for the one asked for
        fill = ", ".join(f"{name}=..." for name in missing)
        fallback, fallback_kwargs = _default_env(action_kinds, pixels)
        warnings.append(f"env {env_spec.name!r} needs {fill} and the question names none: the snippet trains on "
                        f"{fallback.name!r} instead; write {fill} in make('env', {env_spec.name!r}, ...) "
                        "or name the task in the question")  # fmt: skip
        env_spec = fallback  # the warning above names it: env_asked stays, so no second warning
        env_kwargs, _ = _env_arguments(question, env_spec, fallback_kwargs, configs, pixels, components, warnings)

    # a recipe fits when it trains the same agent on the same env family
    recipe, recipe_sets, slots, agent_kwargs, total_frames = None, [], {}, {}, DEFAULT_FRAMES
    if config_doc is not None and _uses(config_doc, agent_spec.name, env_spec.name):
        recipe = config_doc.meta["recipe"]
        recipe_sets = [f"env.{k}={yaml_value(v)}" for k, v in env_kwargs.items() if from_config.get(k) != v]
        agent_kwargs = {k: v for k, v in _section(config, "agent").items() if k != "name"}
        slots = {k: _section(config, k) for k in SLOT_KINDS if k in config and config[k] is not None}
        total_frames = int(_section(config, "train").get("total_frames", DEFAULT_FRAMES))
    used: dict[str, ComponentSpec] = {"agent": agent_spec, "env": env_spec}
    used.update({kind: get_spec(kind, _name_of(value)) for kind, value in slots.items()})
    for kind in SLOT_KINDS:
        spec = named.get(kind)
        if spec is None:
            continue
        if kind not in getattr(agent_class, "slots", {}):
            warnings.append(f"agent {agent_spec.name!r} has no {kind} slot: {spec.name!r} left out")
            continue
        if used.get(kind) is not spec:
            slots[kind], used[kind] = spec.name, spec
            if recipe is not None:  # the whole section: the recipe's arguments were its component's
                recipe_sets.append(f"{kind}={_written(spec)}")
    inherent = "pixels" in env_spec.tags and "vector" not in env_spec.tags  # Atari, Procgen: pixels only
    sees_pixels = bool(env_kwargs.get("from_pixels")) or inherent or _atari_task(env_spec, env_kwargs)
    if sees_pixels and "encoder" not in slots:
        encoder = _pixel_encoder(getattr(agent_class, "slots", {}), components)
        if encoder is not None:
            slots["encoder"], used["encoder"] = encoder.name, encoder
    agent_kwargs = _accepted(agent_spec, agent_kwargs, warnings)
    slots = {k: (_accepted(used[k], v, warnings) if isinstance(v, dict) else v) for k, v in slots.items()}
    # a plain name that resolves to another plugin's component (or to several) is written qualified
    slots = {k: ({**v, "name": _written(used[k])} if isinstance(v, dict) else _written(used[k]))
             for k, v in slots.items()}  # fmt: skip
    _defaults_used(asked_agent, env_asked, agent_spec, env_spec, recipe, warnings)
    _unmatched_words(question, {*vocabulary, *tokenize(" ".join(map(str, env_kwargs.values())))}, warnings)
    return Plan(
        intent,
        _written(agent_spec),
        agent_kwargs,
        _written(env_spec),
        env_kwargs,
        slots,
        total_frames,
        sees_pixels,
        recipe,
        recipe_sets,
        warnings,
        {kind: spec.qualified_name for kind, spec in used.items()},
    )


def _written(spec: ComponentSpec) -> str:
    """``spec``'s plain name where ``make`` resolves it to ``spec``, else its ``plugin:name``."""
    try:
        resolved = get_spec(spec.kind, spec.name)
    except AmbiguousComponentError:
        return spec.qualified_name
    return spec.name if resolved.qualified_name == spec.qualified_name else spec.qualified_name


def _atari_task(env: ComponentSpec, kwargs: dict[str, Any]) -> bool:
    """The task of a family that serves both observation types (EnvPool, gymnasium) is an Atari game: its
    observations are frames ("Breakout-v5", "ALE/Pong-v5")."""
    task = next((kwargs[a] for a in TASK_ARGUMENTS if a in kwargs), None)
    if not isinstance(task, str) or env.name == "atari" or "from_pixels" in env.signature().parameters:
        return False
    base = re.sub(r"-v\d+$", "", task.split("/")[-1]).lower()
    return base in {game.lower() for game in task_choices("atari")}


def _default_env(action_kinds: set[str], pixels: bool) -> tuple[ComponentSpec, dict[str, Any]]:
    """The env an agent trains on when the question names none it can use: by action kind, then observations."""
    kind = "discrete" if "discrete" in action_kinds or not action_kinds else "continuous"
    default = DEFAULT_ENVS[(kind, pixels)]
    return get_spec("env", default["name"]), {k: v for k, v in default.items() if k != "name"}


def _action_kinds(spec: ComponentSpec) -> set[str]:
    return {"discrete", "continuous"} & set(spec.tags)


def _fits(agent: ComponentSpec | None, env: ComponentSpec) -> bool:
    """Nothing says the agent's actions differ from the env's (tags that say nothing fit)."""
    wants, has = (_action_kinds(agent) if agent else set()), _action_kinds(env)
    return not wants or not has or bool(wants & has)


def _fitting_agent(agent: ComponentSpec, env: ComponentSpec, warnings: list[str]) -> ComponentSpec:
    """``agent``, or when its action kind is not the env's, an agent that fits the env (the same family, on- or
    off-policy, first), with a warning saying what was swapped."""
    if _fits(agent, env):
        return agent
    (has,) = _action_kinds(env)
    candidates = [get_spec("agent", name) for name in FITTING_AGENTS[has]]
    family = "off-policy" if "off-policy" in agent.tags else "on-policy"
    swapped = next((c for c in candidates if family in c.tags), candidates[0])
    warnings.append(f"agent {agent.name!r} acts on {'/'.join(sorted(_action_kinds(agent)))} actions and env "
                    f"{env.name!r} has {has} ones: the snippet uses {swapped.name!r} instead")  # fmt: skip
    return swapped


def _choose_env(
    question: Question, named: ComponentSpec | None, agent: ComponentSpec | None
) -> tuple[ComponentSpec | None, dict[str, Any]]:
    """The env the question names, or the family of a task it names ("cartpole swingup": ``dmc``): the one that
    accounts for more of its words, then the one whose actions fit the agent; the named env among equals."""
    task_env, task_kwargs = _env_from_task(question)
    if named is None or task_env is None or task_env.name == named.name:
        return (named, {}) if named is not None else (task_env, task_kwargs)
    task = next(iter(task_kwargs.values()))
    by_task, by_name = len(question.covered(task)), len(question.covered(named.name))
    # an env whose tags do not say its action kind (gymnasium) wins no tie on the action kind
    fits_better = _action_kinds(task_env) and _fits(agent, task_env) and not _fits(agent, named)
    return (task_env, task_kwargs) if by_task > by_name or (by_task == by_name and fits_better) else (named, {})


def _env_arguments(
    question: Question,
    spec: ComponentSpec,
    kwargs: dict[str, Any],
    configs: list[tuple[float, Document]],
    pixels: bool,
    components: list[ComponentSpec],
    warnings: list[str],
) -> tuple[dict[str, Any], list[str]]:
    """The env's keyword arguments: the task the question names (from the family's task list, else a task id
    written in it; a recipe's or the maker's own example only where the family lists its tasks), ``from_pixels``
    where the maker has it, nothing the maker does not take; and the required arguments still missing."""
    kwargs = dict(kwargs)
    params = spec.signature().parameters
    task_argument = next((a for a in TASK_ARGUMENTS if a in params), None)
    if task_argument is not None:
        strict = question.mention(spec.name) is None  # the family unnamed: only unambiguous task names count
        choices = task_choices(spec.name)
        named_task = match_task(question, choices, spec.name, strict)
        if named_task is None and not choices:
            named_task = _task_word(question, spec, components)
        if named_task is not None:
            kwargs[task_argument] = named_task
        elif task_argument not in kwargs and params[task_argument].default is inspect.Parameter.empty and choices:
            fallback = _task_from_configs(spec.name, task_argument, configs) or docstring_example(spec, task_argument)
            if fallback in choices:
                kwargs[task_argument] = fallback
                warnings.append(f"no {spec.name} task named: the snippet uses {task_argument}={fallback!r}")
    if "from_pixels" in params:
        if pixels:
            kwargs["from_pixels"] = True
        elif question.has(STATE_WORDS):
            kwargs.pop("from_pixels", None)
    elif pixels and question.has(PIXEL_WORDS) and "pixels" not in spec.tags:
        warnings.append(f"env {spec.name!r} has no pixel observations: the snippet trains on its states")
    kwargs = _accepted(spec, kwargs, warnings)
    required = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    missing = [n for n, p in params.items() if p.kind in required and p.default is p.empty and n not in kwargs]
    return kwargs, missing


def _task_word(question: Question, env: ComponentSpec, components: list[ComponentSpec]) -> str | None:
    """A task id written in the question for a family whose tasks cannot be listed: a versioned id
    ("Breakout-v5", "ALE/Pong-v5") first, else a capitalised word that names no component ("Hopper")."""
    ids = TASK_ID.findall(question.text)
    if ids:
        return ids[0]
    names = (
        {t for s in components for t in tokenize(s.name)}
        | set(STOP_WORDS)
        | _stems(
            [w for ws in KIND_WORDS.values() for w in ws] + [*PIXEL_WORDS, *STATE_WORDS, *EXPORT_WORDS, *EVALUATE_WORDS]
        )
    )
    after = question.mention(env.name)
    start = after[1] + 1 if after else 0
    for word in question.words[start:]:
        if word[:1].isupper() and re.fullmatch(r"[A-Za-z][A-Za-z0-9/-]*", word) and not set(word_forms(word)) & names:
            return word
    return None


def _defaults_used(
    agent: ComponentSpec | None,
    env_asked: bool,
    agent_spec: ComponentSpec,
    env_spec: ComponentSpec,
    recipe: str | None,
    warnings: list[str],
) -> None:
    """One warning naming the defaults the snippet fell back on, when the question names no agent or no env."""
    source = f" (recipe {recipe})" if recipe else ""
    if agent is None and not env_asked:
        warnings.append(f"no agent or env named: the snippet trains {agent_spec.name!r} on {env_spec.name!r}{source}")
    elif agent is None:
        warnings.append(f"no agent named: the snippet uses {agent_spec.name!r}{source}")
    elif not env_asked:
        warnings.append(f"no env named: the snippet uses {env_spec.name!r}{source}")


def _unmatched_words(question: Question, vocabulary: set[str], warnings: list[str]) -> None:
    """A warning for the capitalised or id-like words of the question that nothing matched ("Montezuma")."""
    known = vocabulary | _stems([w for ws in KIND_WORDS.values() for w in ws] + [*EXPORT_WORDS, *EVALUATE_WORDS])
    unmatched = []
    for i, word in enumerate(question.words):
        capitalised = word[:1].isupper() and not (i == 0 and word[1:].islower())  # not "Train" opening it
        # the whole word must be known, not one of its parts ("MinAtar" is not "min")
        whole = word_forms(re.sub(r"-v\d+$", "", word))[:1]
        if (capitalised or re.search(r"\d", word)) and whole and not set(whole) & known and word not in unmatched:
            unmatched.append(word)
    if unmatched:
        verb = "matches" if len(unmatched) == 1 else "match"
        warnings.append(f"{', '.join(map(repr, unmatched))} {verb} no component, env or task: left out")


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


def _pixel_encoder(agent_slots: dict[str, Any], components: list[ComponentSpec]) -> ComponentSpec | None:
    """The best-ranked image encoder when the agent's default encoder reads vectors only (PPO's ``mlp``)."""
    default = agent_slots.get("encoder")
    if default in (None, "auto") or "pixels" in get_spec("encoder", _name_of(default)).tags:
        return None
    images = [s for s in components if s.kind == "encoder" and "pixels" in s.tags and "vector" not in s.tags]
    return images[0] if images else None


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
    if isinstance(value, ast.Name):  # a variable of the snippet itself (the evaluate loop's ``seed``)
        return value.id
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
    line ``agent.train(...)``, then what the question asks of the trained agent (evaluate, export).

    The evaluate snippet trains :data:`EVALUATION_SEEDS` independent runs (one per seed) and aggregates their mean
    returns with the IQM and its stratified-bootstrap interval: rliable's runs are seeds, not episodes of one run.
    """
    lines = ["import rlte_plugins"]
    if plan.intent == "evaluate":
        lines += ["import numpy as np", "from rlte_plugins import evaluation as ev"]
    if plan.intent == "export":
        lines.append("from rlte_plugins.export import export_onnx")
    lines.append("")
    if plan.command:
        lines.append(f"# the same run from the command line: {plan.command}")
    seeded = {"seed": ast.Name("seed")} if plan.intent == "evaluate" else {}
    run = [
        call("env = rlte_plugins.make", ['"env"', literal(plan.env)], {**plan.env_kwargs, **seeded}),
        call("agent = rlte_plugins.make", ['"agent"', literal(plan.agent), "env=env"], {**plan.agent_kwargs, **seeded}),
    ]
    if plan.slots:
        run.append(call("agent.set", [], plan.slots))
    run.append(f"agent.train({plan.total_frames:_})")
    if plan.intent == "evaluate":
        lines.append("scores = []")
        lines.append(f"for seed in range({EVALUATION_SEEDS}):  # each seed an independent run")
        run += ["scores.append(np.mean(agent.evaluate(episodes=10)))  # a run's score: its mean return",
                "agent.close()"]  # fmt: skip
        lines += ["\n".join("    " + line for line in block.split("\n")) for block in run]
        agent = literal(plan.agent)
        lines += [
            "scores = np.asarray(scores, dtype=float)[:, None]  # [runs, tasks]",
            f"point, interval = ev.get_interval_estimates({{{agent}: scores}}, ev.aggregate_iqm, reps=2000)",
            f'print("IQM over", len(scores), "seeds:", point[{agent}], "95% CI:", interval[{agent}].ravel())',
        ]
        return "\n".join(lines) + "\n"
    lines += run
    if plan.intent == "export":
        lines += [
            'agent.save("agent.pt")  # `rlte export agent.pt --check` does the same from the command line',
            'result = export_onnx(agent, "policy.onnx")  # checked against PyTorch with onnxruntime',
            "print(result)",
        ]
    else:
        lines.append("print(agent.evaluate(episodes=10))")
    return "\n".join(lines) + "\n"
