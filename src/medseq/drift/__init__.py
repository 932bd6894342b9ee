"""Watching a deployed model: the reference profile a bundle stores of its training inputs
and predictions (:mod:`.profile`), the sliding window of what the service sees and the drift
statistics that compare the two (:mod:`.window`, :mod:`.stats`).

Only numpy: the serve-only install (no scipy, no scikit-learn) runs all of it.
"""

from medseq.drift.profile import ProfileUnsupported, build_profile, profile_refusal
from medseq.drift.window import DriftSettings, DriftWindow

__all__ = ["DriftSettings", "DriftWindow", "ProfileUnsupported", "build_profile", "profile_refusal"]
