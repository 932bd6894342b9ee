"""Readers that turn dataset files into medseq's canonical tables (see ``medseq.schema``).

One module per dataset or format, each with ``read(path, ...)`` returning plain tables
plus a :class:`~medseq.schema.ReadReport`, and ``download(dest)`` that checks a pinned
SHA-256. Readers hold no label logic (that is ``medseq.tasks``) and never import torch.

Modules are imported on use (``from medseq.sources import physionet2012``), so importing
this package costs nothing.
"""
