"""Export a bundle to ONNX, and predict with ONNX Runtime without importing torch.

Export (:func:`export_onnx`, needs torch) writes one graph for the whole ensemble:
inputs ``values, mask, delta`` (B, T, F) float32, ``lengths`` (B,) int64 and ``static``
(B, S) float32 when the model takes one; output ``score`` (B,), the mean member
probability (binary) or output (regression), exactly ``Bundle.predict_arrays``. The batch
axis is dynamic, ``T`` is the featurizer's fixed ``n_steps``. Every model kind exports,
GRU-D included: its ``cummax`` (the index of the last observation) has no ONNX operator,
so a symbolic that unrolls it into ``T`` elementwise ``Max`` nodes is registered for the
duration of the export. The graph's metadata records the bundle's content hash.

Prediction (:class:`OnnxPredictor`) reads ``medseq.json`` with
:mod:`medseq.serving.manifest`, rebuilds the featurizer from its JSON state (numpy and
pandas only) and runs the graph with ONNX Runtime; it refuses a graph exported from
another version of the bundle. ``tests/unit/serving`` checks that this path never loads
torch and that it matches torch to 1e-5 on real stays for every model kind.
"""

from __future__ import annotations

import logging
import os
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from medseq.serving.manifest import ManifestError, read_manifest

logger = logging.getLogger(__name__)

ONNX_FILE = "model.onnx"
OPSET = 18
_HASH_KEY = "medseq_content_sha256"
_INPUTS = ("values", "mask", "delta", "lengths", "static")


def _ensemble_module(bundle):
    import torch

    class Ensemble(torch.nn.Module):
        """All members, averaged as in ``Bundle.predict_arrays``."""

        def __init__(self) -> None:
            super().__init__()
            self.members = torch.nn.ModuleList(bundle.members)
            self.binary = bundle.task == "binary"

        def forward(self, values, mask, delta, lengths, static=None):
            outs = []
            for member in self.members:
                logits = member(values, mask, delta, lengths, static)
                outs.append(torch.sigmoid(logits) if self.binary else logits)
            return torch.stack(outs).mean(dim=0)[:, 0]

    return Ensemble().eval()


def _cummax_symbolic(g, x, dim):
    """``cummax`` along a static dimension as a chain of ``Max`` (values; indices unused)."""
    import torch
    from torch.onnx import symbolic_helper

    dim = symbolic_helper._get_const(dim, "i", "dim")
    n = symbolic_helper._get_tensor_dim_size(x, dim)
    if n is None:
        raise ValueError("cummax export needs a static length along its dimension")
    sizes = g.op("Constant", value_t=torch.ones(n, dtype=torch.int64))
    parts = g.op("Split", x, sizes, axis_i=dim, outputs=n)
    running = [parts[0]] if n > 1 else [parts]
    for part in parts[1:] if n > 1 else []:
        running.append(g.op("Max", running[-1], part))
    values = g.op("Concat", *running, axis_i=dim)
    return values, g.op("Cast", values, to_i=7)  # int64 "indices", never read by GRU-D


@contextmanager
def _cummax_registered(opset: int):
    import torch

    torch.onnx.register_custom_op_symbolic("aten::cummax", _cummax_symbolic, opset)
    try:
        yield
    finally:
        torch.onnx.unregister_custom_op_symbolic("aten::cummax", opset)


def _example_inputs(bundle, batch: int = 2) -> dict[str, Any]:
    import torch

    gen = torch.Generator().manual_seed(0)
    t, f = bundle.featurizer.n_steps, bundle.featurizer.n_features
    inputs = {
        "values": torch.randn(batch, t, f, generator=gen),
        "mask": (torch.rand(batch, t, f, generator=gen) > 0.7).float(),
        "delta": torch.rand(batch, t, f, generator=gen),
        "lengths": torch.tensor([t] + [max(1, t // 2)] * (batch - 1), dtype=torch.int64),
    }
    if bundle.model_config.static_size > 0:
        inputs["static"] = torch.randn(batch, bundle.model_config.static_size, generator=gen)
    return inputs


def export_onnx(
    bundle_dir: str | os.PathLike, output: str | os.PathLike | None = None, opset: int = OPSET
) -> Path:
    """Write the ensemble of ``bundle_dir`` as ONNX (default ``BUNDLE/model.onnx``)."""
    import onnx
    import torch

    from medseq.bundle import load_bundle

    manifest = read_manifest(bundle_dir)
    bundle = load_bundle(bundle_dir)
    if not hasattr(bundle.featurizer, "n_steps"):
        kind = bundle.featurizer.state_dict().get("kind", type(bundle.featurizer).__name__)
        raise ValueError(
            f"{bundle_dir}: ONNX export covers ICU-grid bundles; this one reads {kind!r} "
            "features (serve it with `medseq predict`, or export its members with "
            "torch.onnx from Python)"
        )
    output = Path(output) if output is not None else Path(bundle_dir) / ONNX_FILE
    module, inputs = _ensemble_module(bundle), _example_inputs(bundle)
    names = list(inputs)
    axes = {name: {0: "batch"} for name in names} | {"score": {0: "batch"}}
    with warnings.catch_warnings(), _cummax_registered(opset), torch.no_grad():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notes
        torch.onnx.export(
            module, (), str(output), kwargs=inputs, input_names=names,
            output_names=["score"], dynamic_axes=axes, opset_version=opset, dynamo=False,
        )  # fmt: skip
    graph = onnx.load(str(output))
    onnx.checker.check_model(graph)
    entry = graph.metadata_props.add()
    entry.key, entry.value = _HASH_KEY, manifest["content_sha256"]
    onnx.save(graph, str(output))
    logger.info("exported %s members of %s to %s", len(bundle.members), bundle_dir, output)
    return output


class OnnxPredictor:
    """Featurize with the bundled pipeline and score with ONNX Runtime (no torch).

    Parameters
    ----------
    bundle_dir : path
        The bundle (its ``medseq.json`` is verified against its weights).
    onnx_path : path, optional
        Default ``BUNDLE/model.onnx``; it must come from this bundle (content hash).
    n_threads : int, optional
        ONNX Runtime intra-op threads (default: its own choice).
    """

    def __init__(
        self,
        bundle_dir: str | os.PathLike,
        onnx_path: str | os.PathLike | None = None,
        n_threads: int | None = None,
    ) -> None:
        import onnxruntime as ort

        from medseq.features import ICUFeaturizer

        self.manifest = read_manifest(bundle_dir)
        path = Path(onnx_path) if onnx_path is not None else Path(bundle_dir) / ONNX_FILE
        if not path.is_file():
            raise FileNotFoundError(
                f"{path} not found: run `medseq export {bundle_dir} --format onnx` first"
            )
        options = ort.SessionOptions()
        if n_threads is not None:
            options.intra_op_num_threads = n_threads
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        stored = self.session.get_modelmeta().custom_metadata_map.get(_HASH_KEY)
        if stored != self.manifest["content_sha256"]:
            raise ManifestError(
                f"{path} was exported from another version of {bundle_dir}; export it again"
            )
        self.inputs = [i.name for i in self.session.get_inputs()]
        self.featurizer = ICUFeaturizer.from_state_dict(self.manifest["featurizer"])
        self.task = self.manifest["task"]
        self.threshold = self.manifest["threshold"]

    def predict_arrays(self, features: dict[str, np.ndarray], batch_size: int = 512):
        """Scores (N,) of already-featurised arrays, as ``Bundle.predict_arrays``."""
        n = len(features["lengths"])
        chunks = []
        for start in range(0, n, batch_size):
            feed = {k: features[k][start : start + batch_size] for k in self.inputs}
            chunks.append(self.session.run(["score"], feed)[0])
        return np.concatenate(chunks) if chunks else np.empty(0, dtype=np.float32)

    def predict(self, events, static, subject_ids) -> np.ndarray:
        """Featurise raw tables with the bundled pipeline, then score."""
        return self.predict_arrays(self.featurizer.transform(events, static, subject_ids))


def predict_file_onnx(bundle_dir: str | os.PathLike, data_path: str | os.PathLike):
    """``medseq predict --runtime onnx``: one row per subject of a PhysioNet 2012 set."""
    import pandas as pd

    from medseq.paths import data_root
    from medseq.sources import physionet2012

    predictor = OnnxPredictor(bundle_dir)
    path = Path(data_path).expanduser()
    if not path.is_absolute() and not path.exists():
        path = data_root() / path
    data = physionet2012.read(path)
    ids = data.static.index.to_numpy()
    scores = predictor.predict(data.events, data.static, ids)
    frame = pd.DataFrame({"subject_id": ids})
    if predictor.task == "binary":
        frame["risk"] = scores
        if predictor.threshold is not None:
            frame["decision"] = (scores >= predictor.threshold).astype(int)
    else:
        frame["prediction"] = scores
    return frame
