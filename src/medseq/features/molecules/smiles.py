"""SMILES as token sequences: a tokenizer, a vocabulary fitted on training molecules, padding.

A SMILES string is read as chemically meaningful tokens rather than characters, so ``Cl`` is
one chlorine (not carbon + ``l``) and ``[C@@H]`` one chiral atom:

- a bracket atom ``[...]`` (isotope, element, chirality, hydrogens, charge, class) is one token;
- two-letter elements of the organic subset (``Cl``, ``Br``), then one-letter atoms
  (``B C N O P S F I``), aromatic atoms (``b c n o p s``) and the wildcard ``*``;
- ring closures: one digit, or ``%`` followed by two digits (``%10``);
- bonds ``- = # $ : / \\``, branches ``( )`` and the fragment separator ``.``.

Joining the tokens gives back the string exactly; any other character is an error naming the
SMILES and the position. The vocabulary holds ``<pad>`` (id 0) and ``<unk>`` (id 1) and every
token seen in the training molecules; its state is plain JSON.
"""

from __future__ import annotations

import logging
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Any, ClassVar

import numpy as np

from medseq.features.base import ArraySpec, FeaturizerDescription

logger = logging.getLogger(__name__)

PAD, UNK = "<pad>", "<unk>"
PAD_ID, UNK_ID = 0, 1

_TOKEN = re.compile(
    r"\[[^\[\]]+\]"  # bracket atom
    r"|Cl|Br"  # two-letter organic-subset elements
    r"|[BCNOPSFI]|[bcnops]|\*"  # one-letter and aromatic atoms, wildcard
    r"|%\d\d|\d"  # ring closures
    r"|[-=#$:/\\]"  # bonds
    r"|[().]"  # branches, fragment separator
)


class SmilesError(ValueError):
    """A SMILES string holds text the tokenizer does not know."""


def tokenize(smiles: str) -> list[str]:
    """Split one SMILES into tokens; ``"".join(tokenize(s)) == s``.

    Raises
    ------
    SmilesError
        At the first character that starts no token (e.g. an unclosed ``[``), naming the
        SMILES and the 0-based position.

    Examples
    --------
    >>> tokenize("C[C@@H](Cl)c1ccc%10cc1")
    ['C', '[C@@H]', '(', 'Cl', ')', 'c', '1', 'c', 'c', 'c', '%10', 'c', 'c', '1']
    """
    if not isinstance(smiles, str):
        raise TypeError(f"SMILES must be a str, got {type(smiles).__name__} {smiles!r}")
    if not smiles:
        raise SmilesError("empty SMILES")
    tokens: list[str] = []
    pos = 0
    while pos < len(smiles):
        match = _TOKEN.match(smiles, pos)
        if match is None:
            raise SmilesError(
                f"SMILES {smiles!r}: cannot tokenize at position {pos} ({smiles[pos]!r})"
            )
        tokens.append(match.group())
        pos = match.end()
    return tokens


def detokenize(tokens: Iterable[str]) -> str:
    """Inverse of :func:`tokenize`."""
    return "".join(tokens)


class SmilesVocabulary:
    """Token <-> id map fitted on training SMILES; ids 0 and 1 are ``<pad>`` and ``<unk>``.

    Parameters
    ----------
    min_count : int, default=1
        Tokens seen fewer times in the training molecules map to ``<unk>``.
    """

    def __init__(self, min_count: int = 1) -> None:
        if isinstance(min_count, bool) or not isinstance(min_count, int) or min_count < 1:
            raise ValueError(f"min_count must be an int >= 1, got {min_count!r}")
        self.min_count = min_count
        self.tokens_: list[str] | None = None

    def fit(self, smiles: Iterable[str]) -> SmilesVocabulary:
        """Count tokens; keep those seen ``min_count`` times, most frequent first."""
        counts: Counter[str] = Counter()
        for s in smiles:
            counts.update(tokenize(s))
        kept = sorted(
            (t for t, n in counts.items() if n >= self.min_count), key=lambda t: (-counts[t], t)
        )
        self.tokens_ = [PAD, UNK, *kept]
        self._index = {t: i for i, t in enumerate(self.tokens_)}
        return self

    def _check_fitted(self) -> list[str]:
        if self.tokens_ is None:
            raise RuntimeError("SmilesVocabulary is not fitted; call fit(training_smiles) first")
        return self.tokens_

    def __len__(self) -> int:
        return len(self._check_fitted())

    def encode(self, tokens: Sequence[str]) -> list[int]:
        """Token ids; unknown tokens become ``UNK_ID``."""
        self._check_fitted()
        return [self._index.get(t, UNK_ID) for t in tokens]

    def decode(self, ids: Iterable[int]) -> list[str]:
        """Tokens for ids, stopping at the first ``<pad>``."""
        vocab = self._check_fitted()
        out = []
        for i in ids:
            if int(i) == PAD_ID:
                break
            out.append(vocab[int(i)])
        return out

    def state_dict(self) -> dict[str, Any]:
        """Plain JSON: ``min_count`` and the ordered token list."""
        return {"min_count": self.min_count, "tokens": list(self._check_fitted())}

    @classmethod
    def from_state_dict(cls, state: dict[str, Any]) -> SmilesVocabulary:
        """Inverse of :meth:`state_dict`; checks the special tokens are in place."""
        tokens = state.get("tokens")
        if not isinstance(tokens, list) or tokens[:2] != [PAD, UNK]:
            raise ValueError(
                f"vocabulary state must hold 'tokens' starting with {[PAD, UNK]}, "
                f"got {str(tokens)[:80]}"
            )
        vocab = cls(int(state.get("min_count", 1)))
        vocab.tokens_ = list(tokens)
        vocab._index = {t: i for i, t in enumerate(tokens)}
        return vocab


class SmilesFeaturizer:
    """SMILES -> padded token ids and lengths, with a vocabulary fitted on training molecules.

    Parameters
    ----------
    min_count : int, default=1
        See :class:`SmilesVocabulary`.
    max_length : int, default=256
        Longer token sequences are cut to this many tokens (counted in ``n_truncated_`` and
        logged), which bounds memory for the few very long salts and mixtures.
    n_enumerations : int, default=0
        Test-time averaging over SMILES enumeration: with ``k > 0`` every molecule is given
        as ``1 + k`` strings, the one passed in and ``k`` randomised SMILES of it (RDKit,
        seeded by ``seed`` and the string itself, so a molecule always gets the same
        variants). ``tokens`` is then ``(N, 1 + k, T)`` and :class:`SmilesRNN` averages its
        logits over the variants.
    seed : int, default=0
        Seed of the enumerated variants.

    Examples
    --------
    >>> f = SmilesFeaturizer().fit(["CCO", "c1ccccc1Cl"])
    >>> out = f.transform(["CCO"])
    >>> out["tokens"].shape, int(out["lengths"][0])
    ((1, 3), 3)
    """

    kind: ClassVar[str] = "smiles"

    def __init__(
        self, min_count: int = 1, max_length: int = 256, n_enumerations: int = 0, seed: int = 0
    ) -> None:
        for name, value, low in (
            ("max_length", max_length, 1),
            ("n_enumerations", n_enumerations, 0),
        ):
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ValueError(f"{name} must be an int >= {low}, got {value!r}")
        self.vocabulary = SmilesVocabulary(min_count)
        self.max_length = max_length
        self.n_enumerations = n_enumerations
        self.seed = int(seed)
        self.n_truncated_ = 0

    @property
    def vocab_size(self) -> int:
        """Number of ids, ``<pad>`` and ``<unk>`` included."""
        return len(self.vocabulary)

    def fit(self, smiles: Iterable[str]) -> SmilesFeaturizer:
        """Fit the vocabulary on training SMILES only."""
        self.vocabulary.fit(smiles)
        logger.info("SMILES vocabulary: %d tokens", self.vocab_size)
        return self

    def encode(self, smiles: Sequence[str]) -> list[list[int]]:
        """Token ids per SMILES, cut to ``max_length``."""
        out = []
        truncated = 0
        for s in smiles:
            ids = self.vocabulary.encode(tokenize(s))
            truncated += len(ids) > self.max_length
            out.append(ids[: self.max_length])
        if truncated:
            logger.warning("%d SMILES longer than %d tokens were cut", truncated, self.max_length)
        self.n_truncated_ = truncated
        return out

    def transform(self, smiles: Sequence[str]) -> dict[str, np.ndarray]:
        """``tokens`` int64 (N, T) padded with 0 and ``lengths`` int64 (N,).

        ``T`` is the longest sequence in this call (at most ``max_length``). With
        ``n_enumerations = k > 0``: ``tokens`` (N, 1 + k, T), variant 0 the string given,
        and ``lengths`` (N,) that of variant 0 (each variant's own length is its count of
        non-padding tokens).
        """
        if self.n_enumerations == 0:
            return pad_ids(self.encode(smiles))
        from medseq.features.molecules.smiles_enumeration import variants

        n_variants = 1 + self.n_enumerations
        texts = [v for s in smiles for v in variants(s, self.n_enumerations, self.seed)]
        flat = pad_ids(self.encode(texts))
        tokens = flat["tokens"].reshape(len(smiles), n_variants, -1)
        return {"tokens": tokens, "lengths": flat["lengths"][::n_variants].copy()}

    def describe(self) -> FeaturizerDescription:
        """``tokens`` (N, T) or (N, K, T) int64 ids into the vocabulary, ``lengths`` (N,)."""
        vocab = self.vocabulary._check_fitted()
        dims: tuple[str, ...]
        sizes: dict[str, int]
        if self.n_enumerations:
            dims, sizes = ("N", "K", "T"), {"K": 1 + self.n_enumerations}
        else:
            dims, sizes = ("N", "T"), {}
        return FeaturizerDescription(
            kind=self.kind,
            modality="molecule",
            inputs="SMILES strings",
            outputs=(
                ArraySpec("tokens", "int64", dims, sizes, f"token ids (V={len(vocab)}), 0 pads"),
                ArraySpec("lengths", "int64", ("N",), {}, "tokens of variant 0"),
            ),
            feature_names={"V": list(vocab)},
            step="token",
        )

    def state_dict(self) -> dict[str, Any]:
        """Plain JSON, ``kind`` included."""
        return {
            "kind": self.kind,
            "max_length": self.max_length,
            "n_enumerations": self.n_enumerations,
            "seed": self.seed,
            "vocabulary": self.vocabulary.state_dict(),
        }

    @classmethod
    def from_state_dict(cls, state: dict[str, Any]) -> SmilesFeaturizer:
        """Inverse of :meth:`state_dict`."""
        if state.get("kind") != cls.kind:
            raise ValueError(f"not a SMILES featurizer state (kind={state.get('kind')!r})")
        vocab = SmilesVocabulary.from_state_dict(state["vocabulary"])
        featurizer = cls(
            vocab.min_count,
            int(state["max_length"]),
            int(state.get("n_enumerations", 0)),
            int(state.get("seed", 0)),
        )
        featurizer.vocabulary = vocab
        return featurizer


def pad_ids(sequences: Sequence[Sequence[int]]) -> dict[str, np.ndarray]:
    """Right-pad id lists with ``PAD_ID``: ``tokens`` (N, T) and ``lengths`` (N,), int64."""
    if not sequences:
        raise ValueError("no sequences to pad")
    lengths = np.array([len(s) for s in sequences], dtype=np.int64)
    if lengths.min() < 1:
        raise ValueError("every sequence needs at least one token")
    tokens = np.full((len(sequences), int(lengths.max())), PAD_ID, dtype=np.int64)
    for row, seq in enumerate(sequences):
        tokens[row, : len(seq)] = seq
    return {"tokens": tokens, "lengths": lengths}
