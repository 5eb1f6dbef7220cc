"""The component registry: plugin discovery through entry points, lazy specs and ``make``.

Plugins are Python distributions that declare an entry point in the ``rlte_plugins`` group; the module it
names implements any of the hooks in :mod:`rlte_plugins.hookspecs`. The package's own built-ins are found the
same way (entry point ``rlte_plugins``).

Loading rules:

* ``RLTE_PLUGINS`` (comma separated entry-point or distribution names) loads only those third-party plugins;
  ``RLTE_DISABLE_PLUGINS`` skips the ones it names. The built-ins are always loaded unless denied by name.
* A plugin that raises while importing or registering is reported (name, version, error), none of its
  components are kept, and everything else keeps working. :func:`plugin_problems` also finds the quiet
  mistakes: hooks without ``@hookimpl``, and installed packages that never load (no ``rlte_plugins`` entry
  point, or a misspelt group).
* What a component's own code raises while :func:`make` builds it comes out as a
  :class:`~rlte_plugins.errors.ComponentError` naming the component and its provider (:func:`component_failure`
  does the same for its ``build``).

Name clashes: every component is reachable as ``<plugin>:<name>`` (the plugin's entry-point name). A plain
name resolves to the only provider of that kind and name; when several plugins register it, the built-in one
wins, and between third-party plugins only the qualified names resolve (an error lists them).
"""

from __future__ import annotations

import ast
import dataclasses
import difflib
import fnmatch
import importlib
import importlib.metadata
import importlib.util
import inspect
import os
import re
import traceback
from collections.abc import Callable, Iterable, Mapping
from functools import cache, lru_cache
from typing import Any

from packaging.utils import canonicalize_name

from rlte_plugins.errors import (
    AmbiguousComponentError,
    ComponentArgumentError,
    ComponentError,
    RegistrationError,
    RlteError,
    UnknownComponentError,
    UnknownKindError,
)
from rlte_plugins.hookspecs import HOOKS, OTHER_HOOKS, PROJECT_NAME

ENTRY_POINT_GROUP = "rlte_plugins"
BUILTIN_PLUGIN = "rlte_plugins"
BUILTIN_DIST = "rlte-plugins"
BUILTIN_MODULE = "rlte_plugins.builtins"
KINDS: tuple[str, ...] = tuple(HOOKS)
_PLURALS = {"policies": "policy", "envs": "env", "environments": "env", "environment": "env"}
_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_.\-]*$")
_META_KEYS = {"summary", "tags", "defaults"}
_HOOK_NAMES = [*HOOKS.values(), *OTHER_HOOKS]


@dataclasses.dataclass(frozen=True)
class ComponentSpec:
    """One registered component: enough to list it without importing it, and to build it."""

    kind: str
    name: str
    factory: Callable[..., Any] | str
    plugin: str
    provider: str
    provider_version: str
    summary: str = ""
    tags: tuple[str, ...] = ()
    defaults: dict[str, Any] = dataclasses.field(default_factory=dict)

    @property
    def qualified_name(self) -> str:
        return f"{self.plugin}:{self.name}"

    @property
    def target(self) -> str:
        """Where the factory lives, as ``module:attr``."""
        if isinstance(self.factory, str):
            return self.factory
        return f"{self.factory.__module__}:{self.factory.__qualname__}"

    def load(self) -> Callable[..., Any]:
        """Import and return the factory."""
        if not isinstance(self.factory, str):
            return self.factory
        return _import_target(self.factory, self)

    def signature(self) -> inspect.Signature:
        return factory_signature(self.load())

    def docstring(self) -> str:
        return inspect.getdoc(self.load()) or ""

    def describe(self, full: bool = False) -> dict[str, Any]:
        """A JSON-ready description; ``full`` imports the factory for its signature and docstring."""
        out: dict[str, Any] = {
            "kind": self.kind,
            "name": self.name,
            "qualified_name": self.qualified_name,
            "summary": self.summary,
            "tags": list(self.tags),
            "provider": self.provider,
            "version": self.provider_version,
            "plugin": self.plugin,
            "target": self.target,
        }
        if full:
            sig = self.signature()
            out["signature"] = f"{self.name}{_written_signature(sig)}"
            helps = getattr(self.load(), "option_help", None)
            helps = helps() if callable(helps) else {}
            out["parameters"] = [
                {
                    "name": p.name,
                    **({"help": helps[p.name]} if p.name in helps else {}),
                    "kind": p.kind.name,
                    "default": None if p.default is p.empty else repr(p.default),
                    "required": p.default is p.empty and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD),
                    "annotation": None if p.annotation is p.empty else _annotation(p.annotation),
                }
                for p in sig.parameters.values()
            ]
            out["defaults"] = {k: repr(v) for k, v in self.defaults.items()}
            out["docstring"] = self.docstring()
        return out


@dataclasses.dataclass
class PluginInfo:
    """One entry point of the ``rlte_plugins`` group and what became of it."""

    name: str
    distribution: str
    version: str
    module: str
    status: str = "loaded"  # loaded | failed | disabled
    hooks: list[str] = dataclasses.field(default_factory=list)
    components: int = 0
    error: str | None = None
    warnings: list[str] = dataclasses.field(default_factory=list)

    def describe(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True)
class PluginProblem:
    """An installed distribution whose plugin does not work, what is wrong and how to fix it."""

    distribution: str
    version: str
    problem: str
    fix: str

    def describe(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


class Registry:
    """Components of every kind from a set of plugins.

    Build one with :func:`get_registry` (entry points, cached) or directly from plugin objects, which is
    what tests of clash and failure rules do::

        Registry.from_plugins([("a", module_a), ("b", module_b)])
    """

    def __init__(self) -> None:
        self._specs: dict[str, list[ComponentSpec]] = {kind: [] for kind in KINDS}
        self.plugins: list[PluginInfo] = []
        self._loaded: list[tuple[PluginInfo, Any]] = []  # (plugin, its pluggy manager) for plugin_hooks()

    # -- construction -----------------------------------------------------------------------------------
    @classmethod
    def from_entry_points(cls) -> Registry:
        registry = cls()
        allow = _env_list("RLTE_PLUGINS")
        deny = _env_list("RLTE_DISABLE_PLUGINS")
        seen: set[str] = set()
        found_builtin = False
        for ep in _entry_points():
            if ep.name in seen:  # the same distribution twice on sys.path: the first one wins, as imports do
                continue
            seen.add(ep.name)
            dist_name, version = _dist_of(ep)
            info = PluginInfo(name=ep.name, distribution=dist_name, version=version, module=ep.value)
            found_builtin |= ep.name == BUILTIN_PLUGIN
            if _is_disabled(ep.name, dist_name, allow, deny):
                info.status = "disabled"
                registry.plugins.append(info)
                continue
            try:
                plugin = ep.load()
            except BaseException as exc:  # noqa: BLE001 - a broken plugin must never break the host
                if isinstance(exc, KeyboardInterrupt):
                    raise
                registry.plugins.append(info)
                registry._fail(info, exc)
                continue
            registry.add_plugin(plugin, info)
        if not found_builtin and not _is_disabled(BUILTIN_PLUGIN, BUILTIN_DIST, set(), deny):
            # Running from a source tree that was never pip-installed: no entry point metadata exists, so
            # register the built-ins the way their entry point would.
            from rlte_plugins import __version__

            info = PluginInfo(BUILTIN_PLUGIN, BUILTIN_DIST, __version__, BUILTIN_MODULE)
            registry.add_plugin(importlib.import_module(BUILTIN_MODULE), info)
        return registry

    @classmethod
    def from_plugins(cls, plugins: Iterable[tuple[str, Any]]) -> Registry:
        """A registry of in-process plugin objects (modules or instances with hook implementations)."""
        registry = cls()
        for name, plugin in plugins:
            registry.add_plugin(plugin, PluginInfo(name, name, "0", repr(plugin)))
        return registry

    def add_plugin(self, plugin: Any, info: PluginInfo) -> PluginInfo:
        """Validate a plugin's hooks and run its ``register_*`` implementations; report, never raise."""
        import pluggy

        from rlte_plugins import hookspecs

        self.plugins.append(info)
        manager = pluggy.PluginManager(PROJECT_NAME)
        manager.add_hookspecs(hookspecs)
        added: list[ComponentSpec] = []
        try:
            manager.register(plugin, name=info.name)
            callers = manager.get_hookcallers(plugin) or []
            _check_hook_names(info.name, callers)
            info.hooks = sorted(h.name for h in callers)
            info.warnings = _unmarked_hooks(plugin, info.hooks)
            for kind, hook_name in HOOKS.items():
                for impl in getattr(manager.hook, hook_name).get_hookimpls():
                    impl.function(register=self._register_callable(kind, info, added))
        except BaseException as exc:  # noqa: BLE001
            if isinstance(exc, KeyboardInterrupt):
                raise
            for spec in added:
                self._specs[spec.kind].remove(spec)
            self._fail(info, exc)
            return info
        info.components = len(added)
        self._loaded.append((info, manager))
        return info

    def _fail(self, info: PluginInfo, exc: BaseException) -> None:
        info.status = "failed"
        where = traceback.extract_tb(exc.__traceback__)
        origin = f" ({where[-1].filename}:{where[-1].lineno})" if where else ""
        info.error = f"{type(exc).__name__}: {exc}{origin}"

    def _register_callable(self, kind: str, info: PluginInfo, added: list[ComponentSpec]) -> Callable[..., None]:
        def register(name: str, factory: Callable[..., Any] | str, **meta: Any) -> None:
            spec = self._make_spec(kind, name, factory, info, meta)
            if any(s.plugin == info.name and s.name == name for s in self._specs[kind]):
                raise RegistrationError(f"plugin {info.name!r} registers {kind} {name!r} twice")
            self._specs[kind].append(spec)
            added.append(spec)

        register.__doc__ = f"register(name, factory, **meta): add one {kind} from plugin {info.name!r}."
        return register

    @staticmethod
    def _make_spec(kind: str, name: Any, factory: Any, info: PluginInfo, meta: dict[str, Any]) -> ComponentSpec:
        if not isinstance(name, str) or not _NAME_RE.match(name):
            raise RegistrationError(
                f"{kind} name {name!r} from plugin {info.name!r} is invalid: use lowercase letters, digits, "
                "'_', '-' or '.'"
            )
        if isinstance(factory, str):
            if factory.count(":") != 1 or not all(factory.split(":")):
                raise RegistrationError(
                    f"{kind} {name!r}: lazy factory {factory!r} must look like 'package.module:attr'"
                )
        elif not callable(factory):
            raise RegistrationError(f"{kind} {name!r}: factory must be callable or 'module:attr', got {factory!r}")
        unknown = set(meta) - _META_KEYS
        if unknown:
            raise RegistrationError(
                f"{kind} {name!r}: unknown metadata {sorted(unknown)}; accepted: {sorted(_META_KEYS)}"
            )
        tags = meta.get("tags", ())
        if isinstance(tags, str) or not all(isinstance(t, str) for t in tags):
            raise RegistrationError(f"{kind} {name!r}: tags must be a sequence of strings, got {tags!r}")
        defaults = dict(meta.get("defaults") or {})
        summary = meta.get("summary")
        if summary is None:
            summary = _summary_of(factory)
        return ComponentSpec(
            kind=kind,
            name=name,
            factory=factory,
            plugin=info.name,
            provider=info.distribution,
            provider_version=info.version,
            summary=" ".join(str(summary).strip().split("\n\n", 1)[0].split()),  # the first paragraph, on one line
            tags=tuple(tags),
            defaults=defaults,
        )

    # -- queries ----------------------------------------------------------------------------------------
    def plugin_hooks(self, hook: str) -> list[tuple[PluginInfo, Callable[..., Any]]]:
        """``(plugin, caller)`` for each loaded plugin that implements ``hook``, one of the hooks that register no
        component (:data:`~rlte_plugins.hookspecs.OTHER_HOOKS`), in load order: the caller calls each with the
        hook's keyword arguments and reports a plugin whose hook raises."""
        return [(info, getattr(m.hook, hook)) for info, m in self._loaded if getattr(m.hook, hook).get_hookimpls()]

    def specs(self, kind: str | None = None, pattern: str | None = None) -> list[ComponentSpec]:
        kinds = KINDS if kind is None else (normalize_kind(kind),)
        out = [
            spec
            for k in kinds
            for spec in self._specs[k]
            if pattern is None
            or fnmatch.fnmatchcase(spec.name, pattern)
            or fnmatch.fnmatchcase(spec.qualified_name, pattern)
        ]
        return sorted(out, key=lambda s: (KINDS.index(s.kind), natural_key(s.name), natural_key(s.plugin)))

    def get(self, kind: str, name: str) -> ComponentSpec:
        kind = normalize_kind(kind)
        if not isinstance(name, str):
            raise UnknownComponentError(f"{kind} name must be a string, got {type(name).__name__}")
        specs = self._specs[kind]
        if ":" in name:
            plugin, _, plain = name.partition(":")
            for spec in specs:
                if spec.plugin == plugin and spec.name == plain:
                    return spec
            why = self.unavailable(plugin)
            if why:
                raise UnknownComponentError(f"{kind} {name!r} comes from {why}")
            self._unknown(kind, name)
        matches = [s for s in specs if s.name == name]
        if len(matches) == 1:
            return matches[0]
        builtin = [s for s in matches if s.plugin == BUILTIN_PLUGIN]
        if builtin:
            return builtin[0]
        if matches:
            options = ", ".join(repr(s.qualified_name) for s in matches)
            raise AmbiguousComponentError(f"{kind} {name!r} is registered by several plugins; name one of {options}")
        self._unknown(kind, name)
        raise AssertionError("unreachable")

    def _unknown(self, kind: str, name: str) -> None:
        names = sorted({s.name for s in self._specs[kind]} | {s.qualified_name for s in self._specs[kind]})
        close = difflib.get_close_matches(name, names, n=3, cutoff=0.5)
        hint = f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
        available = ", ".join(sorted({s.name for s in self._specs[kind]}, key=natural_key)) or "none"
        off = [f"{p.name} ({p.status})" for p in self.plugins if p.status != "loaded"]
        skipped = f"; not loaded: {', '.join(off)}" if off else ""
        raise UnknownComponentError(
            f"unknown {kind} {name!r}{hint} (available: {available}; `rlte list {kind}` shows them{skipped})"
        )

    def unavailable(self, plugin: str, distribution: str | None = None, version: str | None = None) -> str | None:
        """``"plugin 'x' (dist version), which ..."``: why the plugin whose entry point is ``plugin`` provides
        nothing here, or ``None`` if it is loaded.

        ``distribution`` and ``version`` (as a checkpoint records them) make the install hint exact.
        """
        info = next((p for p in self.plugins if p.name == plugin), None)
        if info is not None and info.status == "loaded":
            return None
        if info is not None and info.status == "disabled":
            return f"plugin {plugin!r} ({info.distribution}), which is disabled by RLTE_PLUGINS/RLTE_DISABLE_PLUGINS"
        if info is not None:
            return f"plugin {plugin!r} ({info.distribution} {info.version}), which failed to load: {info.error}"
        if distribution is None:
            return (
                f"plugin {plugin!r}, which is not installed (install the package that declares the {plugin!r} "
                "entry point; `rlte plugins` lists the installed ones)"
            )
        known = version is not None and version != "unknown"
        written, pin = (f"{distribution} {version}", f"=={version}") if known else (distribution, "")
        return f"plugin {plugin!r} ({written}), which is not installed: pip install '{distribution}{pin}'"


# -- module-level API -----------------------------------------------------------------------------------
@lru_cache(maxsize=1)
def get_registry() -> Registry:
    """The registry of every installed plugin, loaded once per process."""
    return Registry.from_entry_points()


def reset_registry() -> None:
    """Forget the loaded registry (after installing a plugin or changing the allow/deny lists)."""
    get_registry.cache_clear()
    importlib.invalidate_caches()


def normalize_kind(kind: str) -> str:
    """``"encoders"`` -> ``"encoder"``; unknown kinds raise :class:`UnknownKindError`."""
    if not isinstance(kind, str):
        raise UnknownKindError(f"component kind must be a string, got {type(kind).__name__}")
    k = kind.strip().lower()
    k = _PLURALS.get(k, k[:-1] if k.endswith("s") and k[:-1] in KINDS else k)
    if k not in KINDS:
        close = difflib.get_close_matches(k, KINDS, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise UnknownKindError(f"unknown component kind {kind!r}{hint} (kinds: {', '.join(KINDS)})")
    return k


def list_components(kind: str | None = None, pattern: str | None = None) -> list[ComponentSpec]:
    """Registered components, naturally sorted, optionally filtered by kind and an fnmatch pattern.

    Imports no component: summaries come from registration metadata or the factory's source.

    Examples:
        >>> import rlte_plugins
        >>> [s.name for s in rlte_plugins.list_components("distribution", "*categorical")]
        ['categorical', 'masked_categorical', 'multi_categorical']
    """
    return get_registry().specs(kind, pattern)


def get_spec(kind: str, name: str) -> ComponentSpec:
    """The :class:`ComponentSpec` registered as ``kind``/``name`` (plain or ``plugin:name``)."""
    return get_registry().get(kind, name)


@dataclasses.dataclass(frozen=True)
class ComponentRef:
    """How a component was made: kind, qualified name, the caller's keyword arguments and the provider.

    A component may pin choices its factory resolved through an ``rlte_resolved_kwargs`` mapping (the
    ``"gymnasium"`` env records the backend that ``backend="auto"`` picked); they replace the caller's.
    """

    kind: str
    name: str
    kwargs: dict[str, Any]
    provider: str
    version: str


def make(kind: str, name: str, /, **kwargs: Any) -> Any:
    """Build the component registered as ``kind``/``name`` with keyword arguments checked against it.

    Examples:
        >>> import rlte_plugins
        >>> enc = rlte_plugins.make("encoder", "mlp", in_features=4, num_cells=[8])
        >>> enc.out_features
        8
        >>> rlte_plugins.make("encoder", "mpl")
        Traceback (most recent call last):
        ...
        rlte_plugins.errors.UnknownComponentError: unknown encoder 'mpl'; did you mean 'mlp'? ...

    Anything else the factory raises comes out as a :class:`~rlte_plugins.errors.ComponentError` that names
    the component and its provider, is chained to the original (``__cause__``) and is still an instance of the
    original's type; errors the factory raises on purpose (any :class:`~rlte_plugins.errors.RlteError`) pass
    through unchanged.
    """
    spec = get_spec(kind, name)
    factory = spec.load()
    merged = {**spec.defaults, **kwargs}
    check_arguments(spec, factory, merged)
    try:
        obj = factory(**merged)
    except RlteError:
        raise  # deliberate errors say what to change; a nested make has already named its component
    except Exception as exc:
        raise ComponentError.wrap(exc, "made", spec.kind, spec.name, spec.provider, spec.provider_version) from exc
    recorded = dict(kwargs)
    # read on the object's own class: a wrapper forwarding attribute reads (a TransformedEnv) records nothing
    resolved = getattr(obj, "rlte_resolved_kwargs", None) if hasattr(type(obj), "rlte_resolved_kwargs") else None
    if isinstance(resolved, Mapping):
        recorded.update(resolved)  # a choice the factory made (backend="auto") is recorded as what it chose
    try:
        obj._rlte_component = ComponentRef(
            spec.kind, spec.qualified_name, recorded, spec.provider, spec.provider_version
        )
    except (AttributeError, TypeError):
        pass  # objects without a __dict__ (ints, tuples...) simply cannot be saved by reference
    return obj


def component_failure(exc: BaseException) -> ComponentError | None:
    """``exc`` as a :class:`~rlte_plugins.errors.ComponentError` naming the component whose code raised it,
    or ``None`` when no component did.

    :func:`make` wraps what a constructor raises; a component's ``build(...)`` runs later, called by an agent,
    so its errors are traced back here: the innermost ``build`` frame in the traceback whose ``self`` was made
    by :func:`make` names the component.
    """
    if isinstance(exc, ComponentError):
        return exc
    if isinstance(exc, RlteError) or not isinstance(exc, Exception):
        return None  # deliberate errors already say what to change
    ref: ComponentRef | None = None
    tb = exc.__traceback__
    while tb is not None:
        frame = tb.tb_frame
        if frame.f_code.co_name == "build":
            found = getattr(frame.f_locals.get("self"), "_rlte_component", None)
            ref = found if isinstance(found, ComponentRef) else ref
        tb = tb.tb_next
    if ref is None:
        return None
    return ComponentError.wrap(exc, "built", ref.kind, ref.name.partition(":")[2], ref.provider, ref.version)


def check_arguments(spec: ComponentSpec, factory: Callable[..., Any], kwargs: dict[str, Any]) -> None:
    """Raise :class:`ComponentArgumentError` unless ``kwargs`` fit the factory's signature."""
    params = factory_signature(factory).parameters
    if not params:
        return
    P = inspect.Parameter
    named = {n: p for n, p in params.items() if p.kind in (P.POSITIONAL_OR_KEYWORD, P.KEYWORD_ONLY)}
    accepts_any = any(p.kind is P.VAR_KEYWORD for p in params.values())
    accepted = (
        ", ".join(n if p.default is P.empty else f"{n}={p.default!r}" for n, p in named.items()) or "no arguments"
    )
    who = f"{spec.kind} {spec.name!r} ({spec.provider})"
    if not accepts_any:
        unknown = [k for k in kwargs if k not in named]
        if unknown:
            close = difflib.get_close_matches(unknown[0], list(named), n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise ComponentArgumentError(f"{who} got unexpected argument {unknown[0]!r}{hint} (accepted: {accepted})")
    missing = [n for n, p in named.items() if p.default is P.empty and n not in kwargs]
    if missing:
        raise ComponentArgumentError(f"{who} is missing required argument {missing[0]!r} (accepted: {accepted})")


def factory_signature(factory: Callable[..., Any]) -> inspect.Signature:
    """The call signature of a factory; for classes, that of ``__init__`` (a metaclass ``__call__``, as
    TorchRL's envs have, would otherwise hide it)."""
    try:
        if "__signature__" in getattr(factory, "__dict__", {}):
            return factory.__signature__  # declared (an agent's Config, a preset): the one source of truth
        if isinstance(factory, type) and factory.__init__ is not object.__init__:
            if getattr(factory, "rlte_merge_base_signature", False):
                return _class_signature(factory)
            sig = inspect.signature(factory.__init__)
            return sig.replace(parameters=list(sig.parameters.values())[1:])
        return inspect.signature(factory)
    except (TypeError, ValueError):
        return inspect.Signature()


def _class_signature(cls: type) -> inspect.Signature:
    """``__init__``'s signature without ``self``; where it forwards ``**kwargs`` to a base class, the base's
    named parameters are added (keyword-only), up the MRO, so validation and ``rlte info`` see all of them.

    Only for classes that set ``rlte_merge_base_signature = True``: their ``**kwargs`` must go to the base
    untouched (a subclass that fills some base arguments itself would advertise them wrongly).
    """
    P = inspect.Parameter
    params: list[inspect.Parameter] = []
    seen: set[str] = set()
    var_kw: inspect.Parameter | None = None
    inits = [k.__dict__["__init__"] for k in cls.__mro__ if "__init__" in k.__dict__ and k is not object]
    for depth, init in enumerate(inits):
        own = list(inspect.signature(init).parameters.values())[1:]
        var_kw = next((p for p in own if p.kind is P.VAR_KEYWORD), None)
        for p in own:
            if p.kind in (P.VAR_KEYWORD, P.VAR_POSITIONAL) or p.name in seen:
                continue
            seen.add(p.name)
            params.append(p if depth == 0 else p.replace(kind=P.KEYWORD_ONLY))
        if var_kw is None:
            break
    params.sort(key=lambda p: p.kind)  # stable: keeps the order within each kind
    if var_kw is not None:
        params.append(var_kw)
    return inspect.Signature(params)


def natural_key(text: str) -> list[Any]:
    """Sort key that orders ``env2`` before ``env10``."""
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", text)]


def plugin_problems(registry: Registry | None = None) -> list[PluginProblem]:
    """Installed plugins that do not work, and why: failed to load, hooks never called, or a distribution that
    depends on rlte-plugins (or declares a near-miss entry-point group) but no ``rlte_plugins`` entry point.

    Reads every installed distribution's metadata, so ``rlte plugins`` and ``rlte doctor`` call it, not listing.
    """
    registry = registry or get_registry()
    problems = []
    for p in registry.plugins:
        who = f"plugin {p.name} {p.version}"
        if p.status == "failed":
            fix = f"fix it or `pip uninstall {p.distribution}` (the other plugins keep working)"
            problems.append(PluginProblem(p.distribution, p.version, f"{who} failed to load: {p.error}", fix))
        problems += [
            PluginProblem(p.distribution, p.version, f"{who}: {w}", "decorate it with @rlte_plugins.hookimpl")
            for w in p.warnings
        ]
    seen = {canonicalize_name(p.distribution) for p in registry.plugins} | {BUILTIN_DIST}
    table = f"[project.entry-points.{ENTRY_POINT_GROUP}]"
    for dist in importlib.metadata.distributions():
        name = dist.metadata["Name"] or ""
        if not name or canonicalize_name(name) in seen:
            continue
        seen.add(canonicalize_name(name))
        who = f"{name} {dist.version}"
        near = sorted({ep.group for ep in dist.entry_points if _near_group(ep.group)})
        if near:
            problem = f"{who} declares the entry-point group {near[0]!r}, not {ENTRY_POINT_GROUP!r}: it is never loaded"
            fix = f"rename the table in its pyproject.toml to {table} and reinstall it"
        elif any(_requires_rlte(req) for req in dist.requires or []):
            problem = (
                f"{who} depends on rlte-plugins but declares no {ENTRY_POINT_GROUP!r} entry point: it is never loaded"
            )
            module = canonicalize_name(name).replace("-", "_")
            fix = f'add {table} {module} = "{module}.plugin" (its hooks\' module) to its pyproject.toml, reinstall it'
        else:
            continue
        problems.append(PluginProblem(name, dist.version, problem, fix))
    return problems


# -- helpers --------------------------------------------------------------------------------------------
def _requires_rlte(requirement: str) -> bool:
    """A requirement on rlte-plugins that is not only an optional extra's."""
    from packaging.requirements import InvalidRequirement, Requirement

    try:
        req = Requirement(requirement)
    except InvalidRequirement:
        return False
    return canonicalize_name(req.name) == BUILTIN_DIST and "extra" not in str(req.marker or "")


def _near_group(group: str) -> bool:
    """An entry-point group that looks like a misspelt ``rlte_plugins`` (``rlte-plugins``, ``rlte_plugin``...)."""
    if group == ENTRY_POINT_GROUP:
        return False
    plain = re.sub(r"[-_.\s]+", "_", group).lower()
    return plain == ENTRY_POINT_GROUP or difflib.SequenceMatcher(None, plain, ENTRY_POINT_GROUP).ratio() >= 0.85


def _check_hook_names(plugin: str, callers: Iterable[Any]) -> None:
    """Refuse hook implementations that no hook spec declares (pluggy would say "unknown hook" without a hint)."""
    for caller in callers:
        if caller.has_spec() or all(impl.optionalhook for impl in caller.get_hookimpls()):
            continue
        close = difflib.get_close_matches(caller.name, _HOOK_NAMES, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise RegistrationError(
            f"plugin {plugin!r} implements unknown hook {caller.name!r}{hint} (hooks: {', '.join(_HOOK_NAMES)})"
        )


def _unmarked_hooks(plugin: Any, marked: list[str]) -> list[str]:
    """Functions named like hooks that lack ``@hookimpl``: pluggy ignores them silently."""
    out = []
    for attr in dir(plugin):
        if not attr.startswith("register_") or attr in marked or not callable(getattr(plugin, attr, None)):
            continue
        close = difflib.get_close_matches(attr, _HOOK_NAMES, n=1)
        if close:
            named = "" if close[0] == attr else f" (and the hook is called {close[0]!r})"
            out.append(f"{attr} is not marked with @rlte_plugins.hookimpl, so it is never called{named}")
    return out


def _entry_points() -> list[importlib.metadata.EntryPoint]:
    return list(importlib.metadata.entry_points(group=ENTRY_POINT_GROUP))


def _dist_of(ep: importlib.metadata.EntryPoint) -> tuple[str, str]:
    dist = getattr(ep, "dist", None)
    if dist is None:
        return ep.name, "unknown"
    return dist.metadata["Name"] or ep.name, dist.version or "unknown"


def _env_list(var: str) -> set[str]:
    return {item.strip() for item in os.environ.get(var, "").split(",") if item.strip()}


def _is_disabled(plugin: str, dist: str, allow: set[str], deny: set[str]) -> bool:
    names = {plugin, dist, dist.replace("-", "_")}
    if names & deny:
        return True
    if allow and plugin != BUILTIN_PLUGIN:
        return not (names & allow)
    return False


def _import_target(target: str, spec: ComponentSpec | None = None) -> Any:
    module_name, _, attr = target.partition(":")
    try:
        obj: Any = importlib.import_module(module_name)
        for part in attr.split("."):
            obj = getattr(obj, part)
    except ImportError as exc:
        who = f"{spec.kind} {spec.name!r} from {spec.provider}" if spec else repr(target)
        missing = (exc.name or module_name).split(".")[0]
        raise UnknownComponentError(
            f"{who} cannot be imported ({target}): {exc}; install what it needs (`pip install {missing}`)"
        ) from exc
    except AttributeError as exc:
        who = f"{spec.kind} {spec.name!r} from {spec.provider}" if spec else repr(target)
        raise UnknownComponentError(f"{who} points at {target!r}, which does not exist: {exc}") from exc
    return obj


class _Written(str):
    """An annotation shown as written (``int``), not as the quoted string that postponed annotations leave."""

    def __repr__(self) -> str:
        return str(self)


def _written_signature(signature: inspect.Signature) -> inspect.Signature:
    """``signature`` without its return annotation and with string annotations unquoted."""
    parameters = [
        p.replace(annotation=_Written(p.annotation)) if isinstance(p.annotation, str) else p
        for p in signature.parameters.values()
    ]
    return signature.replace(parameters=parameters, return_annotation=inspect.Signature.empty)


def _annotation(annotation: Any) -> str:
    return annotation if isinstance(annotation, str) else getattr(annotation, "__name__", repr(annotation))


def _summary_of(factory: Callable[..., Any] | str) -> str:
    if not isinstance(factory, str):
        return (inspect.getdoc(factory) or "").strip()
    module_name, _, attr = factory.partition(":")
    return docstrings_in(module_name).get(attr, "")


@cache
def module_tree(module_name: str) -> ast.Module | None:
    """The syntax tree of a module's source, read without importing it (None when it has no readable source)."""
    try:
        spec = importlib.util.find_spec(module_name)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.origin or not spec.origin.endswith(".py"):
        return None
    try:
        with open(spec.origin, encoding="utf-8") as handle:
            return ast.parse(handle.read())
    except (OSError, SyntaxError):
        return None


@cache
def docstrings_in(module_name: str) -> dict[str, str]:
    """Top-level docstrings of a module read from its source, without importing it."""
    tree = module_tree(module_name)
    if tree is None:
        return {}
    return {
        node.name: ast.get_docstring(node) or ""
        for node in tree.body
        if isinstance(node, (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
    }
