"""The one training loop every method uses, with per-epoch checkpoints for exact resume.

Data stays on the device (``bench.data.DeviceData``); on CUDA the loop runs with
channels_last tensors in bfloat16 autocast with fused optimisers, and optionally under
``torch.compile``. The loop never syncs with the host inside an epoch: loss and accuracy
are summed on the device and read once per epoch. Reported accuracy is the final epoch's.

Modules: :mod:`~bench.engine.options` (:class:`EngineOptions` and the speed switches),
:mod:`~bench.engine.optimizer`, :mod:`~bench.engine.step` (forward and loss) and
:mod:`~bench.engine.update` (the optimiser's update), both compiled under ``--compile``,
:mod:`~bench.engine.loop` (:func:`train`), :mod:`~bench.engine.packed` (several runs in one
step), :mod:`~bench.engine.evaluate` and :mod:`~bench.engine.checkpoints`.
"""

from bench.engine.checkpoints import TrainResult, progress_path, state_snapshot
from bench.engine.evaluate import Accuracy, evaluate
from bench.engine.loop import Diverged, EpochClock, train
from bench.engine.optimizer import make_optimizer
from bench.engine.options import (
    EngineOptions,
    autocast,
    compile_model,
    configure_backends,
    model_input,
    prepare_model,
    step_begin,
)

__all__ = [
    "Accuracy",
    "Diverged",
    "EngineOptions",
    "EpochClock",
    "TrainResult",
    "autocast",
    "compile_model",
    "configure_backends",
    "evaluate",
    "make_optimizer",
    "model_input",
    "prepare_model",
    "progress_path",
    "state_snapshot",
    "step_begin",
    "train",
]
