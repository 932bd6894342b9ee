"""Recurrent models for padded healthcare sequences.

Every model takes the feature dict as keyword tensors,
``forward(values, mask, delta, lengths, static=None) -> logits (B, n_outputs)``, pads by
``lengths`` and ``mask`` (never PackedSequence) and is built from a :class:`ModelConfig` by
:func:`build_model`.
"""

from __future__ import annotations

from medseq.models.cells import GRUCell, LSTMCell, RNNCell, cell_from_fused, run_cell
from medseq.models.config import ModelConfig
from medseq.models.grud import GRUD
from medseq.models.init import init_recurrent_
from medseq.models.pooling import AdditiveAttention, Pooling
from medseq.models.registry import MODEL_KINDS, build_model, model_config_from_dict
from medseq.models.sequence_classifier import RecurrentEncoder, SequenceClassifier

__all__ = [
    "GRUD",
    "MODEL_KINDS",
    "AdditiveAttention",
    "GRUCell",
    "LSTMCell",
    "ModelConfig",
    "Pooling",
    "RNNCell",
    "RecurrentEncoder",
    "SequenceClassifier",
    "build_model",
    "cell_from_fused",
    "init_recurrent_",
    "model_config_from_dict",
    "run_cell",
]
