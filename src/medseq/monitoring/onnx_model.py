"""A beat bundle's classifier run from its exported ONNX graph by ONNX Runtime, without torch.

``medseq export BUNDLE --format onnx`` writes ``BUNDLE/model.onnx``: the whole ensemble as
one graph with the inputs of the members' ``forward`` (``values`` (B, T, F) float32,
``lengths`` (B,) int64) and the averaged class probabilities as ``score`` (B, K). The beat
model reads each beat with its ``context_beats`` predecessors from a zero state, so there
is no recurrent state to carry from one call to the next: what a stream carries is the
feature rows of the last ``context_beats`` beats, from which each new beat's window is
built (left-aligned, zero padding after, shorter at the stream's start), exactly as the
bundle was trained (:func:`medseq.features.signals.beat_sequence.beat_context`).

:class:`OnnxBeatClassifier` has the interface of
:class:`~medseq.monitoring.beat_model.BeatClassifier` (``push``, ``reset``,
``class_names``, ``context_beats``, ``featurizer_state``), so the detector takes either.
Why both: the numpy path needs nothing but numpy; this one runs the graph an exporter or
a model registry ships, in float32 as on an accelerator, and is the path for models the
numpy step does not implement. The two agree to 1e-5 on real records (tested).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from medseq.monitoring.beat_features import UnsupportedBundle, check_featurizer
from medseq.monitoring.beat_model import check_model, read_bundle
from medseq.serving.onnx import _HASH_KEY as HASH_KEY
from medseq.serving.onnx import ONNX_FILE


class OnnxBeatClassifier:
    """Class probabilities of each beat given its predecessors, from ``BUNDLE/model.onnx``.

    Parameters
    ----------
    bundle_dir : path
        The beat bundle (hash-checked; its model and featurizer must stream).
    onnx_path : path, optional
        Default ``BUNDLE/model.onnx``; it must have been exported from this bundle.
    n_threads : int, default=1
        ONNX Runtime intra-op threads (one per stream on an edge device).
    """

    def __init__(
        self,
        bundle_dir: str | os.PathLike,
        onnx_path: str | os.PathLike | None = None,
        n_threads: int = 1,
    ) -> None:
        import onnxruntime as ort

        manifest, _ = read_bundle(bundle_dir)
        check_model(manifest.get("model_config", {}))
        check_featurizer(manifest.get("featurizer", {}))
        if manifest.get("task") != "multiclass" or not manifest.get("class_names"):
            raise UnsupportedBundle(
                f"streaming beat labels need a multiclass bundle with class_names, got "
                f"task={manifest.get('task')!r}"
            )
        path = Path(onnx_path) if onnx_path is not None else Path(bundle_dir) / ONNX_FILE
        if not path.is_file():
            raise FileNotFoundError(
                f"{path} not found: run `medseq export {bundle_dir} --format onnx` first "
                "(where torch is installed), then copy the bundle with model.onnx"
            )
        options = ort.SessionOptions()
        options.intra_op_num_threads = n_threads
        options.inter_op_num_threads = 1
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        stored = self.session.get_modelmeta().custom_metadata_map.get(HASH_KEY)
        if stored != manifest["content_sha256"]:
            raise UnsupportedBundle(
                f"{path} was exported from another version of {bundle_dir}; export it again"
            )
        names = sorted(i.name for i in self.session.get_inputs())
        if names != ["lengths", "values"]:
            raise UnsupportedBundle(f"{path}: expected inputs lengths and values, got {names}")
        self.class_names: list[str] = list(manifest["class_names"])
        self.featurizer_state: dict[str, Any] = dict(manifest["featurizer"])
        self.context_beats = int(self.featurizer_state.get("context_beats", 0))
        self.n_features = len(self.featurizer_state["mean"])
        self.reset()

    @classmethod
    def from_bundle(cls, path: str | os.PathLike) -> OnnxBeatClassifier:
        """The bundle's ``model.onnx`` (as :meth:`BeatClassifier.from_bundle`)."""
        return cls(path)

    def reset(self) -> None:
        """Forget the preceding beats (a new stream, or after a gap)."""
        self._context = np.zeros((0, self.n_features), np.float32)

    def push(self, features: np.ndarray) -> np.ndarray:
        """Probabilities ``(k, n_classes)`` of the next ``k`` beats ``features (k, F)``."""
        rows = np.asarray(features, np.float32).reshape(-1, self.n_features)
        k, c = len(rows), self.context_beats
        if k == 0:
            return np.zeros((0, len(self.class_names)))
        n_before = len(self._context)
        matrix = np.concatenate([self._context, rows]) if n_before else rows
        beat = n_before + np.arange(k)  # row of each new beat in matrix
        first = np.maximum(beat - c, 0)
        lengths = beat - first + 1
        offsets = np.arange(c + 1)[None, :]
        values = matrix[np.minimum(first[:, None] + offsets, beat[:, None])]  # (k, C+1, F)
        values[offsets >= lengths[:, None]] = 0.0
        self._context = matrix[max(0, len(matrix) - c) :].copy() if c else matrix[:0]
        feed = {"values": values, "lengths": lengths.astype(np.int64)}
        return np.asarray(self.session.run(["score"], feed)[0], np.float64)
