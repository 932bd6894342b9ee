"""SMILES enumeration (RDKit): one molecule, many valid SMILES strings.

A molecule has one canonical SMILES but many valid ones (start atom, branch order, ring-closure
order). Training a sequence model on randomised SMILES of the training molecules ("SMILES
enumeration", Bjerrum 2017, arXiv:1703.07076) is data augmentation that keeps the molecule, and
so its labels, unchanged; validation and test use the canonical string. RDKit does the chemistry
(``Chem.MolToRandomSmilesVect``, the seeded form of ``MolToSmiles(mol, doRandom=True)``);
RDKit is imported lazily (``pip install "medseq[molecules]"``).
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:  # the training augmentation alone needs torch; featurising does not
    import torch

from medseq.features.molecules.smiles import (
    UNK_ID,
    SmilesFeaturizer,
    SmilesVocabulary,
    pad_ids,
    tokenize,
)


def _chem() -> Any:
    try:
        from rdkit import Chem, RDLogger
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ImportError(
            "SMILES enumeration and scaffolds need RDKit: pip install 'medseq[molecules]'"
        ) from err
    RDLogger.DisableLog("rdApp.*")  # type: ignore[attr-defined]  # missing from rdkit's stubs
    return Chem


def parse(smiles: str, *, lenient: bool = False) -> Any:
    """RDKit molecule for ``smiles``; ``ValueError`` naming it when RDKit cannot read it.

    ``lenient=True`` keeps a molecule that fails RDKit's valence rules but is syntactically
    valid (Tox21 has 8 hypervalent aluminium salts, ``O[AlH3](O)O``) unsanitized, with ring
    information, so that it can still be grouped by scaffold rather than dropped.
    """
    chem = _chem()
    mol = chem.MolFromSmiles(smiles)
    if mol is None and lenient:
        mol = chem.MolFromSmiles(smiles, sanitize=False)
        if mol is not None:
            mol.UpdatePropertyCache(strict=False)
            chem.FastFindRings(mol)
    if mol is None:
        raise ValueError(f"RDKit cannot parse SMILES {smiles!r}")
    return mol


def canonical_smiles(smiles: str) -> str:
    """RDKit's canonical SMILES; the input itself when RDKit rejects its valences.

    Such molecules (8 in Tox21) are then neither canonicalised nor enumerated: writing an
    unsanitized molecule would change its text (``[O]`` for ``O``), which is worse than
    leaving it as given.
    """
    try:
        return _chem().MolToSmiles(parse(smiles))
    except ValueError:
        return smiles


def random_smiles(smiles: str, n: int, seed: int) -> list[str]:
    """``n`` randomised SMILES of the molecule (repeats possible), reproducible by ``seed``."""
    return list(_chem().MolToRandomSmilesVect(parse(smiles), int(n), randomSeed=int(seed)))


def variants(smiles: str, n: int, seed: int) -> list[str]:
    """``smiles`` followed by ``n`` randomised SMILES of it, the same for the same string.

    The RDKit seed mixes ``seed`` with a CRC of the string, so a molecule's variants do not
    depend on where it sits in a batch. A molecule RDKit rejects is repeated as given.
    """
    try:
        extra = random_smiles(smiles, n, (seed + zlib.crc32(smiles.encode())) % (2**31 - 1))
    except ValueError:
        extra = [smiles] * n
    return [smiles, *extra]


class SmilesEnumerationAugment:
    """Training-batch augmentation: replace each molecule's tokens by a randomised SMILES.

    Callable as ``augment(batch, generator)`` (the :class:`~medseq.training.Trainer` hook):
    each row of ``batch["tokens"]`` (variant 0 of ``(B, V, T)`` test-time variants, which
    training does not use) is decoded with the fitted vocabulary, and with
    probability ``p`` re-written as a random SMILES of the same molecule (RDKit seed drawn
    from ``generator``, so the run is reproducible), re-tokenized and re-padded. Rows that
    hold ``<unk>`` or were cut at ``max_length`` are left as they are (their string is not
    the molecule's). Labels are untouched.

    Parameters
    ----------
    featurizer : SmilesFeaturizer
        Fitted; its vocabulary decodes and encodes.
    p : float, default=1.0
        Probability of enumerating a row.
    """

    def __init__(self, featurizer: SmilesFeaturizer, p: float = 1.0) -> None:
        if not 0.0 <= float(p) <= 1.0:
            raise ValueError(f"enumeration probability p must be in [0, 1], got {p!r}")
        self.featurizer = featurizer
        self.p = float(p)
        self._cache: dict[str, Any] = {}

    @property
    def vocabulary(self) -> SmilesVocabulary:
        return self.featurizer.vocabulary

    def _mol(self, smiles: str) -> Any:
        if smiles not in self._cache:
            try:
                self._cache[smiles] = parse(smiles)
            except ValueError:
                self._cache[smiles] = None
        return self._cache[smiles]

    def _rewrite(self, ids: Iterable[int], seed: int) -> list[int]:
        ids = [int(i) for i in ids]
        if UNK_ID in ids or len(ids) >= self.featurizer.max_length:
            return ids
        mol = self._mol("".join(self.vocabulary.decode(ids)))
        if mol is None:
            return ids
        text = _chem().MolToRandomSmilesVect(mol, 1, randomSeed=seed)[0]
        new = self.vocabulary.encode(tokenize(text))
        if UNK_ID in new or len(new) > self.featurizer.max_length:
            return ids
        return new

    def __call__(
        self, batch: dict[str, torch.Tensor], generator: torch.Generator
    ) -> dict[str, torch.Tensor]:
        import torch

        tokens, lengths = batch["tokens"], batch["lengths"]
        if tokens.dim() == 3:
            tokens = tokens[:, 0]
        n = tokens.shape[0]
        draw = torch.rand(n, generator=generator) < self.p
        seeds = torch.randint(0, 2**31 - 1, (n,), generator=generator)
        rows = tokens.cpu().numpy()
        sizes = lengths.cpu().numpy()
        sequences = [
            self._rewrite(rows[i, : sizes[i]], int(seeds[i]))
            if draw[i]
            else [int(t) for t in rows[i, : sizes[i]]]
            for i in range(n)
        ]
        padded = pad_ids(sequences)
        out = dict(batch)
        out["tokens"] = torch.as_tensor(padded["tokens"], device=tokens.device)
        out["lengths"] = torch.as_tensor(padded["lengths"], device=lengths.device)
        return out


def enumerated_smiles_table(smiles: Sequence[str], n: int, seed: int) -> np.ndarray:
    """(N, n) array of randomised SMILES, for test-time averaging over enumerations."""
    return np.array([random_smiles(s, n, seed + i) for i, s in enumerate(smiles)], dtype=object)
