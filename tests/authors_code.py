"""The authors' training code for the lockstep tests, imported at test time from a checkout of
their repository (never copied into this one), and how the tests report what they compared.

A checkout is found through an environment variable naming its folder (:data:`CHECKOUTS`);
without it a lockstep test skips and says so. CI reaches only PyPI, so there the tests skip
unless ``.ci/run`` found a checkout beside the repository. The authors' modules import
packages this environment lacks and their step never calls (torchvision for their data
loaders, wandb, torchmetrics, scikit-learn): those get inert stand-ins for the import.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import subprocess
import sys
import types
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

UNAVAILABLE = ("torchvision", "wandb", "torchmetrics", "sklearn")
"""Third-party packages the authors' modules import at the top and the tested step never
uses; each gets a stand-in module whose every attribute is an inert placeholder class."""


@dataclass(frozen=True)
class Checkout:
    """Where one repository's checkout is looked for, and a file that identifies it."""

    variable: str
    repository: str
    commit: str
    marker: str

    def text(self) -> str:
        return f"{self.repository} (the suite follows commit {self.commit})"


CHECKOUTS = {
    "px": Checkout("BENCH_PX_CHECKOUT", "iurada/px-ntk-pruning", "82ce2bf",
                   "train_classification.py"),
    "open_lth": Checkout("BENCH_OPEN_LTH_CHECKOUT", "facebookresearch/open_lth", "2ce732f",
                         "training/train.py"),
}

REPORTS: list[str] = []
"""One line per lockstep comparison run in this session (conftest prints them at the end)."""


def checkout(name: str) -> Path:
    """The folder of checkout ``name``; skips the test (saying why) when none is configured,
    fails when the variable names a folder that is not that repository."""
    spec = CHECKOUTS[name]
    value = os.environ.get(spec.variable)
    if not value:
        pytest.skip(f"no checkout of {spec.text()}: set {spec.variable} to its folder "
                    "(CI reaches only PyPI: .ci/run sets it where ../shared/checkouts has one)")
    root = Path(value).expanduser()
    if not (root / spec.marker).is_file():
        pytest.fail(f"{spec.variable}={value} is not a checkout of {spec.repository} "
                    f"(no {spec.marker})")
    return root


def describe(root: Path) -> str:
    """``path (commit abc1234)`` where the checkout is a git work tree, else the path."""
    done = subprocess.run(["git", "-C", str(root), "rev-parse", "--short", "HEAD"],
                          capture_output=True, text=True)
    inside = done.returncode == 0 and Path(subprocess.run(
        ["git", "-C", str(root), "rev-parse", "--show-toplevel"], capture_output=True,
        text=True).stdout.strip() or "/") == root.resolve()
    return f"{root} (commit {done.stdout.strip()})" if inside else str(root)


def report(line: str) -> None:
    REPORTS.append(line)


class _Inert(type):
    """The type of the stand-ins: any attribute of one is another stand-in (so
    ``torchvision.datasets.CIFAR10`` works as a base class without importing anything)."""

    def __getattr__(cls, attr: str) -> type:
        if attr.startswith("__"):
            raise AttributeError(attr)
        return _Inert(attr, (_Placeholder,), {})


class _Placeholder(metaclass=_Inert):
    """Stands for a class or function of a package the tested code never calls."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        raise RuntimeError("a stand-in for a package absent here was called")


def _stand_in(name: str) -> types.ModuleType:
    module = types.ModuleType(name)
    module.__path__ = []  # a package: submodules import
    module.__getattr__ = lambda attr: getattr(_Placeholder, attr)  # type: ignore[method-assign]
    return module


class _Finder:
    """Makes ``import torchvision.transforms`` and the like give stand-ins."""

    def __init__(self, roots: tuple[str, ...]) -> None:
        self.roots = roots

    def find_spec(self, fullname: str, path: object = None, target: object = None):
        if fullname.split(".")[0] not in self.roots:
            return None
        return importlib.util.spec_from_loader(fullname, self)

    def create_module(self, spec: object) -> types.ModuleType:
        return _stand_in(spec.name)  # type: ignore[attr-defined]

    def exec_module(self, module: types.ModuleType) -> None:
        pass


@contextmanager
def authors_modules(root: Path, names: list[str],
                    while_importing: dict[tuple[object, str], object] | None = None
                    ) -> Iterator[dict[str, types.ModuleType]]:
    """Import the modules ``names`` from the checkout at ``root`` (stand-ins for the absent
    packages of :data:`UNAVAILABLE`; ``while_importing`` sets attributes, as
    ``{(owner, name): value}``, for the imports only). Afterwards the checkout's modules
    leave ``sys.modules`` again: the two repositories share top-level names (``datasets``,
    ``models``); the returned modules stay usable."""
    absent = tuple(p for p in UNAVAILABLE if importlib.util.find_spec(p) is None)
    before = set(sys.modules)
    finder = _Finder(absent)
    sys.meta_path.insert(0, finder)
    sys.path.insert(0, str(root))
    saved = {key: getattr(*key) for key in while_importing or {}}
    try:
        for (owner, name), value in (while_importing or {}).items():
            setattr(owner, name, value)
        modules = {name: importlib.import_module(name) for name in names}
    finally:
        for (owner, name), value in saved.items():
            setattr(owner, name, value)
        sys.path.remove(str(root))
        sys.meta_path.remove(finder)
    try:
        yield modules
    finally:
        theirs = [name for name in set(sys.modules) - before
                  if _imported_by(sys.modules[name], root, finder)]  # all before deleting:
        for name in theirs:  # a namespace package's path is looked up through its parent
            del sys.modules[name]


def _imported_by(module: types.ModuleType, root: Path, finder: _Finder) -> bool:
    """Whether ``module`` came from the checkout at ``root`` (namespace packages included)
    or is a stand-in."""
    spec = getattr(module, "__spec__", None)
    if spec is not None and spec.loader is finder:
        return True
    places = [getattr(module, "__file__", None) or "", *getattr(module, "__path__", [])]
    return any(str(place).startswith(str(root)) for place in places)


def relative_difference(a: torch.Tensor, b: torch.Tensor) -> float:
    """``max |a - b| / max |b|``: the largest difference against the tensor's scale."""
    scale = b.double().abs().max().item()
    gap = (a.double() - b.double()).abs().max().item()
    return gap / scale if scale > 0 else gap
