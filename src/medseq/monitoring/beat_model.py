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

The ``context_beats + 1`` windows that read a beat step through it together: the state
carried from one beat to the next is the partial state of each window still open (those
of the next ``context_beats`` beats), so a beat costs one input projection, one batched
recurrent product and the read-out, whatever the stream's length or how it is chunked.
Probabilities are the softmax of each member's logits, averaged over the members (as the
bundle's own predictions are).
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
        """Stack the members on a leading axis, weights transposed for ``x @ W``: a step
        of every member is one batched product (numpy runs each member's block, not a
        block-diagonal matrix two thirds zeros for three members)."""
        m, three_h, _ = w["w_ih"].shape
        self.n_members, self.hidden_size = m, three_h // 3
        self.w_in = np.ascontiguousarray(w["w_ih"].transpose(0, 2, 1))  # (M, F, 3H)
        self.b_in = w["b_ih"][:, None, :]  # (M, 1, 3H)
        self.w_rec = np.ascontiguousarray(w["w_hh"].transpose(0, 2, 1))  # (M, H, 3H)
        self.b_rec = w["b_hh"][:, None, :]  # (M, 1, 3H)
        self.w_head = np.ascontiguousarray(w["w_out"].transpose(0, 2, 1))  # (M, H, K)
        self.b_head = w["b_out"][:, None, :]  # (M, 1, K)
        # the state a new window starts from (never written: shared by copies)
        self._zero = np.zeros((m, 1, self.hidden_size))

    @classmethod
    def from_bundle(cls, path: str | Path) -> BeatClassifier:
        """Load a bundle directory (hash-checked) without torch."""
        manifest, tensors = read_bundle(path)
        return cls(manifest, tensors)

    def reset(self) -> None:
        """Forget the preceding beats (a new stream, or after a gap)."""
        # [:, j]: the window of the j-th coming beat, after the beats it has read so far;
        # zero at the start, as every window starts from a zero state
        self._windows = np.zeros((self.n_members, self.context_beats, self.hidden_size))

    def _set_context(self, projections: np.ndarray) -> None:
        """Rebuild the windows from the input projections of the last beats.

        Checkpoints written before the windows were carried (medseq of 2026-12-04 and
        earlier) hold ``_context``: the last ``context_beats`` beats' ``W_i x + b_i``,
        ``(n, 3 M H)``, gates grouped (r of every member, then z, then n);
        :mod:`medseq.serving.signal_state` sets it back by name. Those beats are the only
        ones the coming windows have read, so stepping them from a fresh state gives the
        windows as they were (to the rounding of the projection, which the former
        block-diagonal layout summed in another order: about 1e-16).
        """
        m, h, c = self.n_members, self.hidden_size, self.context_beats
        rows = np.asarray(projections, np.float64).reshape(-1, 3, m, h)[len(projections) - c :]
        self.reset()
        for row in rows if c else ():
            self._step(row.transpose(1, 0, 2).reshape(m, 1, 3 * h))

    _context = property(None, _set_context)

    def _step(self, gi: np.ndarray) -> np.ndarray:
        """One beat's input projection ``gi (M, 1, 3H)`` read by every open window at once.

        The ``C`` windows in flight (those of the next ``C`` beats) and a new one starting
        at this beat (the window of the beat ``C`` later) take one GRU step together, a
        batch of ``C + 1`` rows per member: the window of this beat is complete after it.
        Returns its hidden state ``(M, 1, H)``; the others stay in :attr:`_windows`.
        """
        h = np.concatenate([self._windows, self._zero], axis=1)  # (M, C+1, H)
        gh = h @ self.w_rec  # (M, C+1, 3H); the new window's row is 0: b_hh alone
        gh += self.b_rec
        h = gru_update(gi, gh, h, self.hidden_size)
        self._windows = h[:, 1:]
        return h[:, :1]

    def push(self, features: np.ndarray) -> np.ndarray:
        """Probabilities ``(k, n_classes)`` of the next ``k`` beats ``features (k, F)``.

        Each beat is read with its ``context_beats`` predecessors (fewer at the stream's
        start) from a zero state, as the bundle was trained. The ``C + 1`` windows that
        read a beat take their step on it together (:meth:`_step`): one batched product
        per beat instead of ``C + 1`` sequential steps. Every product has the same shape
        whatever the number of beats in the call, so a beat's probabilities are the same
        bits however the stream was cut into chunks.
        """
        rows = np.asarray(features, np.float64)
        out = np.empty((len(rows), len(self.class_names)))
        for i in range(len(rows)):
            gi = rows[i : i + 1] @ self.w_in  # (M, 1, 3H)
            gi += self.b_in
            logits = self._step(gi) @ self.w_head  # (M, 1, K)
            logits += self.b_head
            logits -= logits.max(axis=2, keepdims=True)
            p = np.exp(logits, out=logits)
            p /= p.sum(axis=2, keepdims=True)
            out[i] = p.mean(axis=0)[0]
        return out
