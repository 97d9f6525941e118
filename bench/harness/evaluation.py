"""The record's metrics: save the artifact, decode it, evaluate the decoded model."""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from bench import artifact
from bench.data import DeviceData
from bench.engine import (
    Diverged,
    EngineOptions,
    autocast,
    evaluate,
    model_input,
    prepare_model,
)
from bench.fsutil import sha256_file, staged
from bench.metrics import dense_bytes, model_metrics, paper_bytes
from bench.registry import Method
from bench.store import RunSpec, RunStore, artifact_name


def check_finite(model: nn.Module) -> None:
    """:class:`Diverged` when any weight, score or statistic of ``model`` is NaN or infinite."""
    for name, tensor in [*model.named_parameters(), *model.named_buffers()]:
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            raise Diverged(f"non-finite values in {name} of the returned model")


def measure(
    model: nn.Module,
    spec: RunSpec,
    method: Method,
    store: RunStore,
    data: DeviceData,
    options: EngineOptions,
) -> dict[str, Any]:
    """Save the artifact, decode it, and measure the decoded model: the record's metrics.

    Accuracy is the decoded model's, so the bytes reported are the bytes evaluated. The
    logits of decoded and trained model on the first test batch are compared and recorded
    (bit-identical on CPU with float32 values).
    """
    with staged(store.artifact_path(spec.key, "model.bpa")) as staging:
        info = artifact.save(model, staging.path, value_codec=spec.value_codec)
        decoded = prepare_model(artifact.load(staging.path), options)
        accuracy = evaluate(decoded, data, options)
        if not (math.isfinite(accuracy.loss) and math.isfinite(accuracy.top1)):
            raise Diverged(f"non-finite test loss {accuracy.loss} of the decoded model")
        sha256 = sha256_file(staging.path)
        path = staging.target = store.artifact_path(spec.key, artifact_name(sha256))
    structure = model_metrics(decoded)
    metrics: dict[str, Any] = {
        "test_accuracy": accuracy.top1,
        "test_top5": accuracy.top5,
        "test_loss": accuracy.loss,
        "artifact_file": path.name,
        "artifact_sha256": sha256,
        "artifact_bytes": info.bytes,
        "artifact_breakdown": info.breakdown,
        "dense_bytes": dense_bytes(decoded),
        "paper_bytes": paper_bytes(decoded, method.paper_bytes_formula, structure),
        "decode_max_logit_difference": _logit_difference(model, decoded, data, options),
    }
    metrics["compression_ratio"] = metrics["dense_bytes"] / info.bytes
    if any(getattr(m, "weight_source", None) is not None for m in model.modules()):
        stored, _ = artifact.encode(model, value_codec=spec.value_codec, random_weights="stored")
        metrics["artifact_bytes_stored_convention"] = len(stored)
    metrics.update(structure)
    metrics["artifact_layers"] = info.layers
    return metrics


@torch.no_grad()
def _logit_difference(a: nn.Module, b: nn.Module, data: DeviceData, options: EngineOptions
                      ) -> float:
    x, _ = next(data.test_batches(options.eval_batch_size))
    x = model_input(x, options)
    modes = a.training, b.training
    a.eval()
    b.eval()
    with autocast(options):
        diff = (a(x).float() - b(x).float()).abs().max().item()
    a.train(modes[0])
    b.train(modes[1])
    return diff
