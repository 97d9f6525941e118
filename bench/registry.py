"""The method registry: plugins register by name with a typed hyperparameter dataclass.

Built-in plugins live in the ``baselines`` and ``methods`` packages; third-party
packages add more through the entry-point group ``bench.methods`` (the entry
point loads a module that calls :func:`register`, or a :class:`Method` subclass).
"""

from __future__ import annotations

import dataclasses
import importlib
import importlib.metadata
import pkgutil
import typing
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any, ClassVar

from bench.errors import BenchError

if TYPE_CHECKING:
    from torch import nn

    from bench.context import RunContext
    from bench.metrics import PaperFormula
    from bench.store import RunSpec

ENTRY_POINT_GROUP = "bench.methods"
BUILTIN_PACKAGES = ("baselines", "methods")


@dataclass(frozen=True)
class NoHparams:
    """For methods without hyperparameters."""


class Method:
    """A pruning method: given the run context, return the trained model with its masks.

    Subclasses set ``name`` (via :func:`register`), a one-line ``description``,
    ``Hparams`` (a frozen dataclass whose fields become CLI options and enter the
    run key when they differ from their defaults) and ``version`` (bump it when
    the method changes what it computes, so old results are not reused).
    ``uses_density`` is False for methods that keep every weight (dense).
    ``paper_bytes_formula`` is the method paper's byte accounting: the name of a built-in
    (bench.metrics.PAPER_FORMULAS) or the plugin's own :class:`bench.api.PaperFormula`.
    """

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    Hparams: ClassVar[type] = NoHparams
    version: ClassVar[int] = 1
    uses_density: ClassVar[bool] = True
    paper_bytes_formula: ClassVar[str | PaperFormula] = "nonzeros-x32"

    def __init__(self, hparams: Any | None = None) -> None:
        self.hparams = hparams if hparams is not None else self.Hparams()

    def run(self, ctx: RunContext) -> nn.Module:  # pragma: no cover - interface
        raise NotImplementedError

    def check(self, spec: RunSpec, train_images_per_class: int | None) -> None:
        """Raise :class:`BenchError` when ``spec`` cannot run (called before anything
        trains). ``train_images_per_class`` is the class-balanced training set's size per
        class (None: the whole split)."""

    def planned_epochs(self, spec: RunSpec) -> int:
        """Epochs this method trains in all for ``spec`` (the grid's time estimate)."""
        return spec.recipe.epochs


_REGISTRY: dict[str, type[Method]] = {}
_LOADED = False
PLUGIN_WARNINGS: list[str] = []


def register(name: str):
    """Class decorator: ``@register("snip")`` makes the method available as ``--methods snip``."""

    def decorate(cls: type[Method]) -> type[Method]:
        if not (isinstance(cls, type) and issubclass(cls, Method)):
            raise TypeError(f"@register({name!r}) needs a bench.registry.Method subclass")
        if not dataclasses.is_dataclass(cls.Hparams):
            raise TypeError(f"{cls.__name__}.Hparams must be a dataclass")
        existing = _REGISTRY.get(name)
        if existing is not None and existing is not cls:
            raise TypeError(f"method name {name!r} registered twice ({existing} and {cls})")
        cls.name = name
        _REGISTRY[name] = cls
        return cls

    return decorate


def load_plugins() -> None:
    """Import the built-in plugin packages and every ``bench.methods`` entry point, once."""
    global _LOADED
    if _LOADED:
        return
    _LOADED = True
    for package_name in BUILTIN_PACKAGES:
        package = importlib.import_module(package_name)
        for info in pkgutil.iter_modules(package.__path__):
            module = f"{package_name}.{info.name}"
            try:
                importlib.import_module(module)
            except Exception as exc:  # one broken module must not break every command
                PLUGIN_WARNINGS.append(f"module {module} failed to load and its methods are "
                                       f"unavailable: {type(exc).__name__}: {exc}")
    for entry in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        try:
            loaded = entry.load()
        except Exception as exc:  # a broken third-party plugin must not break the suite
            PLUGIN_WARNINGS.append(f"plugin {entry.name!r} ({entry.value}) failed to load: {exc}")
            continue
        if isinstance(loaded, type) and issubclass(loaded, Method) and loaded.name == "":
            register(entry.name)(loaded)


def methods() -> dict[str, type[Method]]:
    """All registered methods by name, sorted."""
    load_plugins()
    return dict(sorted(_REGISTRY.items()))


def get_method(name: str) -> type[Method]:
    """The method class for ``name``; an unknown name is a one-line error listing valid ones."""
    registry = methods()
    if name not in registry:
        raise BenchError(unknown_method_message(name, registry))
    return registry[name]


def unknown_method_message(name: str, registry: dict[str, type[Method]]) -> str:
    """``unknown method 'x'; valid methods: ...`` plus any plugin that failed to load."""
    text = f"unknown method {name!r}; valid methods: {', '.join(registry)}"
    if PLUGIN_WARNINGS:
        text += " (" + "; ".join(PLUGIN_WARNINGS) + ")"
    return text


def hparam_fields(cls: type[Method]) -> list[tuple[str, Any, Any]]:
    """(field name, resolved type, default) for each hyperparameter of a method."""
    hints = typing.get_type_hints(cls.Hparams)  # each base's fields in its own module
    return [(f.name, hints[f.name], f.default) for f in fields(cls.Hparams)]


def parse_value(text: str, kind: Any, what: str) -> Any:
    """Convert a CLI string to a hyperparameter's declared type (int, float, bool, str, Literal)."""
    origin = typing.get_origin(kind)
    if origin is typing.Literal:
        choices = typing.get_args(kind)
        for choice in choices:
            if str(choice) == text:
                return choice
        raise BenchError(f"{what}: {text!r} is not one of {', '.join(map(str, choices))}")
    try:
        if kind is bool:
            lowered = text.lower()
            if lowered in ("1", "true", "yes", "on"):
                return True
            if lowered in ("0", "false", "no", "off"):
                return False
            raise ValueError(text)
        if kind is int:
            return int(text)
        if kind is float:
            return float(text)
    except ValueError:
        raise BenchError(f"{what}: {text!r} is not a valid {kind.__name__}") from None
    return text


def make_hparams(cls: type[Method], overrides: dict[str, str]) -> Any:
    """An instance of ``cls.Hparams`` with string ``overrides`` converted to the field types."""
    known = {name: kind for name, kind, _ in hparam_fields(cls)}
    values = {}
    for key, text in overrides.items():
        name = key.replace("-", "_")
        if name not in known:
            valid = ", ".join(known) or "none"
            raise BenchError(f"method {cls.name!r} has no hyperparameter {key!r}; valid: {valid}")
        values[name] = parse_value(text, known[name], f"{cls.name} {key}")
    try:
        return cls.Hparams(**values)
    except (TypeError, ValueError) as exc:
        raise BenchError(f"bad hyperparameters for {cls.name!r}: {exc}") from exc


def non_default_hparams(hparams: Any) -> dict[str, Any]:
    """The hyperparameters that differ from their defaults: what enters the run key."""
    out = {}
    for f in fields(hparams):
        value = getattr(hparams, f.name)
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
        if value != default:
            out[f.name] = value
    return out


def parse_method_item(text: str) -> tuple[str, dict[str, str]]:
    """``"lth:rewind_epoch=0:prune_rate=0.2"`` -> ("lth", {"rewind_epoch": "0", ...})."""
    name, *parts = text.strip().split(":")
    overrides = {}
    for part in parts:
        key, sep, value = part.partition("=")
        if not sep or not key:
            raise BenchError(f"bad method option {part!r} in {text!r}; expected name:key=value")
        overrides[key.strip()] = value.strip()
    return name.strip(), overrides
