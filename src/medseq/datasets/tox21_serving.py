"""Molecules over REST: the request body of the Tox21 spec (imported on the first request).

Body::

    {"molecules": [{"id": "aspirin", "smiles": "CC(=O)Oc1ccccc1C(=O)O"}]}

Each SMILES is canonicalised with RDKit, as the reader does for training
(:func:`~medseq.features.molecules.smiles_enumeration.canonical_smiles`), so the same
molecule written two ways gets one answer. RDKit is the ``molecules`` extra; without it the
request is refused (503) with that sentence. A SMILES RDKit cannot parse is kept as given,
as in training, and is a 422 only when its tokens are not SMILES at all.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from pydantic import Field

from medseq.serving.requests import (
    MAX_ITEMS,
    Parsed,
    RequestContext,
    RequestError,
    item_ids,
    require_module,
    validate,
)
from medseq.serving.schemas import PatientId, Strict


class MoleculeIn(Strict):
    id: PatientId
    smiles: str = Field(min_length=1, max_length=1000)


class MoleculesRequest(Strict):
    """``POST /v1/predict`` for molecule bundles."""

    molecules: list[MoleculeIn] = Field(min_length=1, max_length=MAX_ITEMS)


def parse(body: Any, context: RequestContext) -> Parsed:
    """SMILES strings -> :class:`~medseq.datasets.tox21.Molecules` (ids 0..N-1)."""
    from medseq.datasets.tox21 import Molecules

    request = validate(MoleculesRequest, body)
    names = [m.id for m in request.molecules]
    item_ids(names, ("body", "molecules"))
    require_module("rdkit", "molecules", "canonicalising SMILES like the training data")
    from medseq.features.molecules.smiles import SmilesError
    from medseq.features.molecules.smiles_enumeration import canonical_smiles

    canonical = []
    for k, molecule in enumerate(request.molecules):
        try:
            canonical.append(canonical_smiles(molecule.smiles))
        except (SmilesError, ValueError) as err:
            raise RequestError.at(("body", "molecules", k, "smiles"), str(err)) from None
    ids = np.arange(len(canonical), dtype=np.int64)
    return Parsed(Molecules(raw=None, canonical=pd.Series(canonical, index=ids)), ids, names)
