"""Speed figures, measured side by side on one machine: ``python -m bench perf``.

Sections (``--sections``):

- ``epoch``: dense ResNet-20 on CIFAR-10 trained by the engine, by a minimal hand-written
  loop, by the engine with every speed switch off (``--plain``) and by the conventional
  DataLoader loop of the reference repositories (:mod:`bench.perf.reference_loops`);
- ``masked``: one training step with a fixed mask and with top-k scores, over dense;
- ``scoring``: PX and SynFlow, 100 pruning rounds on ResNet-20 (PX on 100 images);
- ``packing``: K fixed-mask ResNet-20 runs in one vmapped step against one run alone, for
  K in ``--pack-sizes`` (:mod:`bench.perf.packing`);
- ``profile``: torch.profiler tables of one engine epoch and one conventional epoch,
  written next to the JSON file;
- ``process``: whole processes on CPU, start to exit: one ``bench run`` of dense ResNet-20
  (one epoch on ``--train-images``, default 5000, plus the test split) against the fastest
  correct process doing the same work, with glibc's allocator as it comes and tuned
  (:mod:`bench.perf.process`, :mod:`bench.perf.minimal_process`);
- ``grid``: with ``--grid PRESET``, ``bench run --methods all --preset PRESET`` end to end
  in a fresh results folder.

Epochs and steps are timed with CUDA events on a GPU and ``perf_counter`` elsewhere,
after warm-up, as the median of ``--repeats``. Prints a table with the device name, the
issue's targets and whether each is met, and writes ``results/perf/<device>.json``
(``<device>-compiled.json`` with ``--compile``).

Modules: :mod:`~bench.perf.command` (options, checks, output), :mod:`~bench.perf.timing`,
one module per section (:mod:`~bench.perf.epochs` with ``profile``, :mod:`~bench.perf.masked`,
:mod:`~bench.perf.scoring`, :mod:`~bench.perf.grid`) and :mod:`~bench.perf.targets`.
"""

from bench.perf.command import SECTIONS, add_arguments, command
from bench.perf.grid import training_left_out
from bench.perf.targets import TARGETS, Target, target_rows
from bench.perf.timing import PerfConfig

__all__ = ["SECTIONS", "TARGETS", "PerfConfig", "Target", "add_arguments", "command", "target_rows",
           "training_left_out"]
