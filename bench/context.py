"""What a method is given (:class:`RunContext`) and what it reports spending (:class:`SearchCost`).

The harness builds one context per run; a method trains only through :meth:`RunContext.train`,
so every phase checkpoints, resumes and is timed the same way, and names which phase is the
final training that the record's budget describes.
"""

from __future__ import annotations

import sys
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from functools import partial
from typing import Any

import torch
from torch import nn

from bench.artifact import lossless
from bench.claims import owner_text
from bench.data import DeviceData, mix_seed
from bench.engine import EngineOptions, TrainResult, evaluate, train
from bench.errors import BenchError
from bench.recipe import Recipe
from bench.shared_training import (
    TRAINED_ALONGSIDE,
    SharedTraining,
    load_shared,
    save_shared,
    trained_names,
    training_key,
    training_lease,
)
from bench.store import RunSpec, RunStore

FINAL_PHASE = "train"
"""The phase name of a method that trains once: its seed is the run seed, and it is final."""


@dataclass
class SearchCost:
    """What a method spends besides training its final model (equal-compute comparisons)."""

    extra_epochs: float = 0.0
    shared_epochs: float = 0.0
    """Of ``extra_epochs``, those another run of the store trained with the same inputs
    (:mod:`bench.shared_training`): part of the method's cost, not trained again here."""
    forward_images: int = 0
    backward_images: int = 0
    seconds: float = 0.0

    def count(self, images: int, backward: int = 1) -> None:
        """Record one scoring forward pass over ``images`` and ``backward`` backward passes."""
        self.forward_images += images
        self.backward_images += backward * images


@dataclass
class RunContext:
    """What a method gets: the initialised model, the data, the recipe, and the engine."""

    spec: RunSpec
    model: nn.Module
    data: DeviceData
    recipe: Recipe
    options: EngineOptions
    store: RunStore
    search: SearchCost = field(default_factory=SearchCost)
    phases: list[dict[str, Any]] = field(default_factory=list)
    notes: dict[str, Any] = field(default_factory=dict)
    """Findings a method reports about this run (degenerate pruning rounds, say): recorded."""
    trainer: Callable[..., TrainResult] = train
    """What trains: the engine's :func:`~bench.engine.train`, or the harness's packer, which
    takes the same arguments and may train this run together with others."""

    @property
    def target_density(self) -> float:
        """The kept fraction the run asks for (``spec.density``); what a method achieved is
        measured from the returned model (the record's ``metrics.density``)."""
        return self.spec.density

    @property
    def density(self) -> float:
        """Short for :attr:`target_density`."""
        return self.spec.density

    @property
    def seed(self) -> int:
        return self.spec.seed

    @property
    def device(self) -> torch.device:
        return self.options.device

    def train(
        self,
        model: nn.Module | None = None,
        *,
        params: Sequence[nn.Parameter] | None = None,
        recipe: Recipe | None = None,
        phase: str = FINAL_PHASE,
        final: bool | None = None,
        snapshot_epochs: tuple[int, ...] = (),
        share: bool = False,
    ) -> TrainResult:
        """Train through the one engine; each named phase checkpoints and resumes on its own.

        ``final`` marks the training of the returned model, whose epochs, steps and log the
        record's budget reports (default: the phase named ``train``); every other phase is
        search. ``params`` defaults to every parameter that requires grad. Set up masks,
        scores and random weights before calling: a resumed phase loads its checkpoint.
        With ``share``, a training another run of the store did with exactly these inputs
        is loaded instead of trained (:mod:`bench.shared_training`; the phase's record
        says so), and this one is kept for others.
        """
        model = self.model if model is None else model
        if any(p["phase"] == phase for p in self.phases):
            raise ValueError(f"training phase {phase!r} used twice in one run")
        is_final = phase == FINAL_PHASE if final is None else final
        if is_final and any(p["final"] for p in self.phases):
            raise ValueError(f"training phase {phase!r} marked final after another final one")
        seed = self.seed if phase == FINAL_PHASE else mix_seed(self.seed,
                                                                 zlib.crc32(phase.encode()))
        recipe = recipe or self.recipe
        # the final model's last epoch is evaluated as the decoded artifact (the harness's
        # measurement): the same model where the codec is lossless, so it is not done twice
        evaluate_last = not (is_final and lossless(self.spec.value_codec))
        key = (training_key(self.spec, phase, model, trained_names(model, params), recipe, seed,
                            snapshot_epochs, self.options) if share else None)
        def trained(share_key: str | None) -> Any:
            return self.trainer(
                model, self.data, recipe, seed=seed, options=self.options, params=params,
                checkpoint=self.store.checkpoint_path(self.spec.key, phase), description=phase,
                snapshot_epochs=snapshot_epochs, evaluate_last=evaluate_last, share_key=share_key)

        result, shared = self._trained_or_shared(key, trained, model, phase)
        entry: dict[str, Any] = {}
        if shared is not None:
            # this run's own earlier attempt (killed after saving it) trained it: its own
            own = shared.source.get("run") == self.spec.key
            result = self._use_shared(shared, model, evaluate_last, own)
            if not own:
                entry = {"shared_from": shared.source, "shared_seconds": shared.result.seconds}
                if not is_final:
                    self.search.shared_epochs += result.epochs
        self.phases.append({"phase": phase, "epochs": result.epochs, "steps": result.steps,
                            "seconds": result.seconds, "log": result.log,
                            "resumed_at_epoch": result.resumed_at_epoch, "final": is_final,
                            **entry})
        return result

    def _trained_or_shared(self, key: str | None, trained: Callable[[str | None], Any],
                           model: nn.Module, phase: str
                           ) -> tuple[TrainResult | None, SharedTraining | None]:
        """Train (``trained(share_key)``) unless the store holds this training already, or
        another worker trains it now (then wait for it); a new shared training is stored,
        one another run trained alongside is loaded."""
        if not key:
            return trained(None), None
        with training_lease(self.store, key, waiting=partial(_say_waiting, self.spec.key,
                                                                   phase)) as shared:
            if shared is not None:
                return None, shared
            result = trained(key)
            if result == TRAINED_ALONGSIDE:  # by another run of the packer's batch, stored
                shared = load_shared(self.store, key)
                return (None, shared) if shared is not None else (trained(None), None)
            save_shared(self.store, key, model, result, {"run": self.spec.key, "phase": phase})
            return result, None

    def _use_shared(self, shared: SharedTraining, model: nn.Module, evaluate_last: bool,
                    own: bool = False) -> TrainResult:
        """Load a stored training into ``model``: another run's, with 0 seconds here, or
        ``own`` (this run's, before it was interrupted) with the seconds it took, as a
        checkpointed phase resumes; its last epoch evaluated where its source, a final
        phase, left that out."""
        model.load_state_dict(shared.state)
        result = (replace(shared.result, resumed_at_epoch=shared.result.epochs) if own else
                  replace(shared.result, seconds=0.0, resumed_at_epoch=0))
        if evaluate_last and result.log and "test_accuracy" not in result.log[-1]:
            accuracy = evaluate(model, self.data, self.options)
            result.log[-1].update(test_accuracy=accuracy.top1, test_loss=accuracy.loss)
        return result

    def final_phase(self) -> dict[str, Any] | None:
        """The phase marked final; None for a method that does not train (BenchError when it
        trained but marked no phase final: its budget would be undefined)."""
        final = [p for p in self.phases if p["final"]]
        if not final and self.phases:
            names = ", ".join(p["phase"] for p in self.phases)
            raise BenchError(f"method {self.spec.method!r} trained ({names}) but marked no phase "
                             "final: pass final=True to the training of the returned model")
        return final[0] if final else None


def _say_waiting(run: str, phase: str, claim: dict[str, Any]) -> None:
    """One line on stderr: this run waits for another worker's training it shares."""
    print(f"run {run}: phase {phase} waits for worker {owner_text(claim.get('owner', {}))}, "
          "which trains it (a training this run shares)", file=sys.stderr, flush=True)
