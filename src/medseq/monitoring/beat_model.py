"""A beat bundle's recurrent classifier run in numpy, without torch.

An edge device runs the detector with numpy only (scipy reads CinC ``.mat`` records). A beat
bundle (``medseq train configs/mitbih-beats.toml``) holds, per ensemble member, a one-layer GRU
read out at its last step and a linear layer: each beat is read with its ``context_beats``
predecessors from a zero state (``ConvRNN`` with ``conv_channels=[]``, ``pooling="last"``).
This module reads the bundle's ``weights.safetensors`` and ``medseq.json`` without torch (the
content hash is checked as :func:`medseq.bundle.load_bundle` does), and runs the GRU
equations of :class:`torch.nn.GRU`, gates in torch's order (r, z, n):

.. math::
    r &= \\sigma(W_{ir} x + b_{ir} + W_{hr} h + b_{hr}) \\\\
    z &= \\sigma(W_{iz} x + b_{iz} + W_{hz} h + b_{hz}) \\\\
    n &= \\tanh(W_{in} x + b_{in} + r \\odot (W_{hn} h + b_{hn})) \\\\
    h' &= (1 - z) \\odot n + z \\odot h

The input projection ``W_i x + b_i`` of a beat is computed once and reused by the
``context_beats + 1`` windows that contain it, so a beat costs a fixed number of small
matrix products whatever the stream's length. Probabilities are the softmax of each
member's logits, averaged over the members (as the bundle's own predictions are).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from safetensors.numpy import load as load_safetensors

from medseq.monitoring.beat_features import UnsupportedBundle, check_featurizer
from medseq.numpy_cells import gru_update
from medseq.serving.manifest import WEIGHTS_FILE, ManifestError, read_manifest

#: Model settings a streamed beat bundle must have, with why.
REQUIRED_MODEL: dict[str, tuple[Any, str]] = {
    "kind": ("conv_rnn", "the beat classifier"),
    "conv_channels": ([], "no convolutional front end over beat vectors"),
    "cell": ("gru", "the numpy step implements the GRU"),
    "num_layers": (1, "one recurrent layer"),
    "bidirectional": (False, "a backward pass reads the future"),
    "pooling": ("last", "read out at the beat itself"),
    "mode": ("recording", "one label per beat window"),
}


class BeatModel(Protocol):
    """What the detector needs of a beat model: :class:`BeatClassifier` (numpy) and
    :class:`~medseq.monitoring.onnx_model.OnnxBeatClassifier` (ONNX Runtime) both are."""

    class_names: list[str]
    featurizer_state: dict[str, Any]
    context_beats: int

    def push(self, features: np.ndarray) -> np.ndarray:
        """Probabilities ``(k, n_classes)`` of the next ``k`` beats."""
        ...

    def reset(self) -> None:
        """Forget the preceding beats."""
        ...


def read_bundle(path: str | os.PathLike) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """``medseq.json`` and the weight arrays of a bundle, after checking its content hash.

    The manifest is read and verified by :func:`medseq.serving.manifest.read_manifest`, the
    one torch-free bundle reader (the ONNX runtime's too); the weights by safetensors' numpy
    loader.

    Raises
    ------
    UnsupportedBundle
        If a file is missing, or the hash does not match (the bundle was modified).
    """
    try:
        manifest = read_manifest(path)
    except ManifestError as err:
        raise UnsupportedBundle(str(err)) from None
    return manifest, load_safetensors((Path(path) / WEIGHTS_FILE).read_bytes())


def check_model(config: dict[str, Any]) -> None:
    """Refuse a model that the numpy step cannot run causally, naming the setting."""
    for name, (wanted, why) in REQUIRED_MODEL.items():
        got = config.get(name)
        if name == "conv_channels":
            got = list(got or [])
        if got != wanted:
            raise UnsupportedBundle(
                f"the bundle's model has {name}={got!r}; streaming needs {name}={wanted!r} ({why})"
            )
    if config.get("static_size", 0):
        raise UnsupportedBundle("the bundle's model takes a static input; streaming has none")


class BeatClassifier:
    """Class probabilities of each beat given its predecessors, from a beat bundle.

    Parameters
    ----------
    manifest : dict
        The bundle's ``medseq.json``.
    tensors : dict of str to ndarray
        Its weights, keys ``m{i}.{param}``.

    Attributes
    ----------
    class_names : list of str
        The bundle's classes, in the order of the probability columns.
    context_beats : int
        Preceding beats read with each beat.
    """

    def __init__(self, manifest: dict[str, Any], tensors: dict[str, np.ndarray]) -> None:
        config = manifest.get("model_config", {})
        check_model(config)
        check_featurizer(manifest.get("featurizer", {}))
        if manifest.get("task") != "multiclass" or not manifest.get("class_names"):
            raise UnsupportedBundle(
                f"streaming beat labels need a multiclass bundle with class_names, got "
                f"task={manifest.get('task')!r}"
            )
        self.class_names: list[str] = list(manifest["class_names"])
        self.featurizer_state: dict[str, Any] = dict(manifest["featurizer"])
        self.context_beats = int(self.featurizer_state.get("context_beats", 0))
        stack = {
            name: np.stack(
                [tensors[f"m{i}.{param}"] for i in range(int(manifest["n_members"]))]
            ).astype(np.float64)
            for name, param in (
                ("w_ih", "encoder.rnn.weight_ih_l0"),  # (M, 3H, F)
                ("b_ih", "encoder.rnn.bias_ih_l0"),  # (M, 3H)
                ("w_hh", "encoder.rnn.weight_hh_l0"),  # (M, 3H, H)
                ("b_hh", "encoder.rnn.bias_hh_l0"),  # (M, 3H)
                ("w_out", "output.weight"),  # (M, K, H)
                ("b_out", "output.bias"),  # (M, K)
            )
        }
        self._pack(stack)
        self.reset()

    def _pack(self, w: dict[str, np.ndarray]) -> None:
        """Lay the members side by side: one state vector of ``M H`` values and one
        block-diagonal matrix per product, gates grouped (r of every member, then z, then
        n), so a step is a handful of array operations whatever the number of members."""
        m, three_h, _ = w["w_ih"].shape
        h = three_h // 3
        self.n_members, self.hidden_size = m, h
        mh = m * h
        # column j of gate g for member i sits at g * mh + i * h + j
        self.w_in = np.zeros((w["w_ih"].shape[2], 3 * mh))
        self.b_in = np.zeros(3 * mh)
        self.w_rec = np.zeros((mh, 3 * mh))
        self.b_rec = np.zeros(3 * mh)
        for i in range(m):
            for g in range(3):
                cols = slice(g * mh + i * h, g * mh + (i + 1) * h)
                rows = slice(g * h, (g + 1) * h)
                self.w_in[:, cols] = w["w_ih"][i, rows].T
                self.b_in[cols] = w["b_ih"][i, rows]
                self.w_rec[i * h : (i + 1) * h, cols] = w["w_hh"][i, rows].T
                self.b_rec[cols] = w["b_hh"][i, rows]
        self.w_out, self.b_out = w["w_out"], w["b_out"]
        # the read-out of every member as one block-diagonal product: (MH, M K)
        k = w["w_out"].shape[1]
        self.w_head = np.zeros((mh, m * k))
        for i in range(m):
            self.w_head[i * h : (i + 1) * h, i * k : (i + 1) * k] = w["w_out"][i].T
        self.b_head = w["b_out"].reshape(-1)

    @classmethod
    def from_bundle(cls, path: str | Path) -> BeatClassifier:
        """Load a bundle directory (hash-checked) without torch."""
        manifest, tensors = read_bundle(path)
        return cls(manifest, tensors)

    def reset(self) -> None:
        """Forget the preceding beats (a new stream, or after a gap)."""
        self._context = np.zeros((0, 3 * self.n_members * self.hidden_size))  # last projections

    def push(self, features: np.ndarray) -> np.ndarray:
        """Probabilities ``(k, n_classes)`` of the next ``k`` beats ``features (k, F)``.

        Each beat is read with its ``context_beats`` predecessors (fewer at the stream's
        start) from a zero state; the ``k`` beats of a call run as one batch, and a beat's
        result does not depend on which call it came in (to rounding, far below 1e-9).
        """
        k, mh = len(features), self.n_members * self.hidden_size
        if k == 0:
            return np.zeros((0, len(self.class_names)))
        projected = np.asarray(features, np.float64) @ self.w_in  # (k, 3MH)
        projected += self.b_in
        c, n_before = self.context_beats, len(self._context)
        steps = np.concatenate([self._context, projected]) if n_before else projected
        if n_before == c:  # the common case: every window is full, no padding
            # step t of beat j's window is row j + t of steps: a slice, no gather
            inputs, valid, first, padded = None, None, 0, False
        else:
            index = (n_before + np.arange(k))[:, None] + np.arange(-c, 1)[None, :]  # (k, C+1)
            valid = index >= 0
            inputs = steps[np.maximum(index, 0)]  # (k, C+1, 3MH)
            first = int(np.argmax(valid.any(axis=0)))  # steps before it are padding for all
            padded = not valid[:, first:].all()
        h = np.zeros((k, mh))
        for t in range(first, c + 1):
            if t == first:
                gh = self.b_rec  # W_hh 0 + b_hh: the zero state needs no product
            else:
                gh = h @ self.w_rec  # (k, 3MH)
                gh += self.b_rec
            gi = steps[t : t + k] if inputs is None else inputs[:, t]
            h_new = gru_update(gi, gh, h, mh)
            h = np.where(valid[:, t : t + 1], h_new, h) if padded and valid is not None else h_new
        self._context = steps[max(0, len(steps) - c) :].copy() if c else steps[:0]
        logits = (h @ self.w_head + self.b_head).reshape(k, self.n_members, -1)  # (k, M, K)
        logits -= logits.max(axis=2, keepdims=True)
        p = np.exp(logits)
        p /= p.sum(axis=2, keepdims=True)
        return p.mean(axis=1)
