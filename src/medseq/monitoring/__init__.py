"""Real-time monitoring of physiological signals: streaming detection, alerts, edge replay.

A monitor receives samples as they are recorded, a few hundred a second per patient, in
chunks of any size. Everything here is causal and carries its state across chunks, so a
record streamed in chunks gives the same output as the record fed at once, and the cost of
a chunk does not grow with how long the stream has run.

This package imports numpy only (scipy for CinC ``.mat`` records), never torch, so that it
runs on an edge install (``medseq[edge]``) and starts in well under a second. The modules are
imported on use:

- :mod:`~medseq.monitoring.dsp`: band-pass, FIR and resampling in numpy (no ``scipy.signal``).
- :mod:`~medseq.monitoring.qrs`: causal QRS (R-peak) detection, Pan-Tompkins.
- :mod:`~medseq.monitoring.beat_features`: causal per-beat features for a beat bundle.
- :mod:`~medseq.monitoring.beat_model`: a beat bundle's GRU run in numpy.
- :mod:`~medseq.monitoring.quality`: signal-quality state (flat line, lead off, ...).
- :mod:`~medseq.monitoring.episodes`: rhythm episodes with hysteresis, and alerts.
- :mod:`~medseq.monitoring.detector`: one stream's detector, all of the above together.
- :mod:`~medseq.monitoring.records`: WFDB and CinC records read without ``wfdb``.
- :mod:`~medseq.monitoring.replay`: a record replayed as a stream (``medseq monitor``).

(The drift monitoring of tabular model inputs is a different thing; it lives in
:mod:`medseq.drift`.)
"""
