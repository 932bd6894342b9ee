"""Deploying a bundle: batch and FHIR prediction, streaming, ONNX.

Modules, each imported on use so that ``import medseq.serving`` stays light (no torch,
no FastAPI, never ``medseq.training``):

* :mod:`~medseq.serving.engine`: streaming engine (per-patient recurrent state, the
  incremental featurizer the dataset spec's ``streaming`` part builds,
  :mod:`~medseq.serving.recurrent` steps)
* :mod:`~medseq.serving.store`: SQLite (WAL) persistence of streaming states
* :mod:`~medseq.serving.api`: the FastAPI app; :mod:`~medseq.serving.server` runs it
* :mod:`~medseq.serving.fhir`, :mod:`~medseq.serving.codes`: FHIR R4 Bundles, LOINC/UCUM
* :mod:`~medseq.serving.onnx`: export, and ONNX Runtime prediction without torch
"""
