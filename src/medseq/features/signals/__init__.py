"""Physiological signals (ECG): filtering, R peaks, beat windows, rhythm summaries, featurizers."""
