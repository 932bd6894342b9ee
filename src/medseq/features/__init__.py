"""Featurisation: events and descriptors -> fixed-shape arrays, fitted on training subjects.

* :class:`ICUFeaturizer` (``docs/architecture.md`` §3): the grid, mask, δ, lengths and
  static tensors every medseq model takes; ``state_dict`` is plain JSON.
* :class:`Discretizer`, :class:`Normalizer`, :class:`StaticEncoder`: its parts.
* :func:`summary_features`: per-variable summary statistics for non-neural baselines.
"""

from medseq.features.icu.discretizer import Discretizer, Grid
from medseq.features.icu.featurizer import ICUFeaturizer
from medseq.features.icu.normalizer import Normalizer, NotFittedError
from medseq.features.icu.static import StaticEncoder
from medseq.features.icu.summary import summary_features

__all__ = [
    "Discretizer",
    "Grid",
    "ICUFeaturizer",
    "Normalizer",
    "NotFittedError",
    "StaticEncoder",
    "summary_features",
]
