"""Export a bundle to ONNX, and predict with ONNX Runtime without importing torch.

Every model kind exports (RNN/LSTM/GRU classifiers, GRU-D, ConvRNN in recording and in
sequence mode, SMILES RNN, slice RNN, RETAIN, Doctor AI), whatever its dataset.
Export (:func:`export_onnx`, needs torch; :mod:`medseq.serving.onnx_export`) writes one
graph for the whole ensemble, members averaged inside it, with the inputs the members'
``forward`` names and the output ``score``, exactly ``Bundle.predict_arrays``. The
graph's metadata records the bundle's content hash.

Prediction (:class:`OnnxPredictor`) reads ``medseq.json`` with
:mod:`medseq.serving.manifest`, rebuilds the featurizer from its JSON state
(:func:`medseq.features.registry.featurizer_from_state_dict`), and reads and featurises a
file through the dataset spec the bundle names (``provenance["dataset"]``), as
``medseq predict`` does with torch; it refuses a graph exported from another version of
the bundle. This module names no dataset and no featurizer class: the spec and the
featurizer's registry do. ``tests/integration/test_onnx_every_kind.py`` checks parity
with torch on real inputs for every model kind, and the CLI round trip per dataset.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import numpy as np

from medseq.serving.manifest import ManifestError, read_manifest

logger = logging.getLogger(__name__)

ONNX_FILE = "model.onnx"
OPSET = 18
_HASH_KEY = "medseq_content_sha256"
_OUTPUT = "score"
_DTYPES = {"tensor(float)": np.float32, "tensor(int64)": np.int64}


def export_onnx(
    bundle_dir: str | os.PathLike, output: str | os.PathLike | None = None, opset: int = OPSET
) -> Path:
    """Write the ensemble of ``bundle_dir`` as ONNX (default ``BUNDLE/model.onnx``).

    See :mod:`medseq.serving.onnx_export` for how the inputs are named and shaped.
    """
    from medseq.bundle import load_bundle
    from medseq.serving.onnx_export import write_onnx

    manifest = read_manifest(bundle_dir)
    bundle = load_bundle(bundle_dir)
    output = Path(output) if output is not None else Path(bundle_dir) / ONNX_FILE
    return write_onnx(bundle, output, manifest["content_sha256"], opset)


def bundle_dataset(manifest: dict[str, Any], where: str | os.PathLike) -> Any:
    """The :class:`~medseq.datasets.registry.DatasetSpec` a bundle was trained on."""
    from medseq.datasets.registry import get_dataset

    name = (manifest.get("provenance") or {}).get("dataset")
    if not name:
        raise ManifestError(
            f"{where}: medseq.json records no provenance['dataset'], so there is no reader "
            "for a data file; score featurised arrays with OnnxPredictor.predict_arrays, "
            "or retrain the bundle with `medseq train` (which records it)"
        )
    return get_dataset(name)


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

        from medseq.features.registry import featurizer_from_state_dict

        self.bundle_dir = Path(bundle_dir)
        self.manifest = read_manifest(bundle_dir)
        path = Path(onnx_path) if onnx_path is not None else self.bundle_dir / ONNX_FILE
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
        self.inputs = {i.name: _DTYPES[i.type] for i in self.session.get_inputs()}
        self.featurizer = featurizer_from_state_dict(self.manifest["featurizer"])
        self.task = self.manifest["task"]
        self.threshold = self.manifest["threshold"]
        self.class_names = self.manifest.get("class_names")

    def predict_arrays(self, features: dict[str, np.ndarray], batch_size: int = 512) -> np.ndarray:
        """Scores of already-featurised arrays, as ``Bundle.predict_arrays``.

        ``features`` is the featurizer's ``transform`` output (the dataset spec's); the
        arrays the graph takes are cast to its dtypes, the others ignored.
        """
        missing = sorted(set(self.inputs) - {k for k, v in features.items() if v is not None})
        if missing:
            raise ValueError(
                f"{self.bundle_dir}: the ONNX graph takes {sorted(self.inputs)}, the features "
                f"lack {missing} (got {sorted(features)})"
            )
        n = len(features[next(iter(self.inputs))])
        chunks = []
        for start in range(0, n, batch_size):
            feed = {
                k: np.ascontiguousarray(features[k][start : start + batch_size], dtype=dtype)
                for k, dtype in self.inputs.items()
            }
            chunks.append(self.session.run([_OUTPUT], feed)[0])
        return np.concatenate(chunks) if chunks else np.empty(0, dtype=np.float32)

    def predict(self, data: Any, ids: np.ndarray) -> np.ndarray:
        """Featurise ``ids`` of ``data`` (what the bundle's dataset reader returns) through
        the dataset spec with the bundled featurizer, then score."""
        spec = bundle_dataset(self.manifest, self.bundle_dir)
        return self.predict_arrays(spec.transform(self.featurizer, data, ids))


def predict_file_onnx(bundle_dir: str | os.PathLike, data_path: str | os.PathLike):
    """``medseq predict --runtime onnx``: the table ``medseq predict`` writes with torch.

    The file is read by the reader of the bundle's dataset, every subject it returns is
    predicted (its labelled ones when it has no subject table), and the columns are those
    of :func:`medseq.predictions.prediction_frame`.
    """
    from medseq.paths import data_root
    from medseq.predictions import (
        ids_to_predict,
        output_lengths,
        prediction_frame,
        sample_keys,
        with_sample_keys,
    )

    predictor = OnnxPredictor(bundle_dir)
    spec = bundle_dataset(predictor.manifest, bundle_dir)
    path = Path(data_path).expanduser()
    if not path.is_absolute() and not path.exists():
        path = data_root() / path
    if not path.exists():
        raise FileNotFoundError(
            f"data path {str(data_path)!r} not found here nor under the data root"
        )
    data = spec.read(path)
    task = (predictor.manifest.get("provenance") or {}).get("task", "")
    ids = ids_to_predict(spec, data, task)
    features = spec.transform(predictor.featurizer, data, ids)
    scores = predictor.predict_arrays(features)
    lengths = output_lengths(features, scores)
    frame = prediction_frame(
        ids, scores, predictor.task, predictor.threshold, predictor.class_names, lengths
    )
    if np.ndim(scores) < 3:  # one row per sample: its patient and prediction time
        frame = with_sample_keys(frame, sample_keys(spec, task, data, ids))
    return frame
