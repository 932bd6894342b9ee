"""Explanations: attention over time, integrated gradients, occlusion, global importance.

Every method takes a :class:`medseq.bundle.Bundle` and the feature dict its featurizer
produces, so it works for any medseq model (GRU, LSTM, GRU-D, ensembles) and any task
whose inputs are ``values (N, T, F)`` with ``mask``, ``delta``, ``lengths`` and
``static``; :func:`explain_any` picks the explanation of any bundle (beats and other named
features per step, SMILES tokens, one step of a per-step model: see ``docs/explain.md``).
Captum and matplotlib are imported when a function needs them, not here.
"""

from __future__ import annotations

from medseq.explain.attention import attention_weights, has_attention
from medseq.explain.attribution import Attribution, BundleOutput, integrated_gradients
from medseq.explain.dispatch import explain_any
from medseq.explain.faithfulness import DeletionResult, deletion_check
from medseq.explain.feature_sequences import FeatureSequenceExplanation, explain_feature_sequence
from medseq.explain.importance import global_importance
from medseq.explain.occlusion import occlusion
from medseq.explain.subject import SubjectExplanation, explain_stay, explain_subject
from medseq.explain.tokens import TokenExplanation, explain_tokens

__all__ = [
    "Attribution",
    "BundleOutput",
    "DeletionResult",
    "FeatureSequenceExplanation",
    "SubjectExplanation",
    "TokenExplanation",
    "attention_weights",
    "deletion_check",
    "explain_any",
    "explain_feature_sequence",
    "explain_stay",
    "explain_subject",
    "explain_tokens",
    "global_importance",
    "has_attention",
    "integrated_gradients",
    "occlusion",
]
