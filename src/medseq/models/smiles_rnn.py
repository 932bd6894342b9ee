"""``SmilesRNN``: token embedding + bidirectional GRU/LSTM + attention pooling, multi-task logits.

A SMILES string, tokenized by :mod:`medseq.features.molecules.smiles`, is read as a sequence
of token ids. The model embeds each token, runs a (bidirectional) recurrence within each molecule's
length (padding never reaches a valid step, see
:class:`~medseq.models.sequence_classifier.RecurrentEncoder`), pools the steps with additive
attention and maps the pooled vector to one logit per task (12 for Tox21). Missing labels are
left out by the trainer's masked loss, so one model learns all tasks from every molecule.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import Tensor, nn

from medseq.models.config_base import ModelConfigBase
from medseq.models.config_checks import check_bool, check_choice, check_dropout, check_int
from medseq.models.init import init_recurrent_
from medseq.models.pooling import AdditiveAttention
from medseq.models.sequence_classifier import RecurrentEncoder

CELLS = ("gru", "lstm")
#: Molecules per length bucket inside one forward pass (see ``SmilesRNN.forward``).
BUCKET_SIZE = 16


@dataclass(frozen=True)
class SmilesRNNConfig(ModelConfigBase):
    """Hyperparameters of :class:`SmilesRNN`.

    Parameters
    ----------
    vocab_size : int
        Token ids ``0 .. vocab_size - 1`` (id 0 is padding), from the fitted featurizer.
    kind : "smiles_rnn"
    n_outputs : int, default=12
        One logit per task.
    embedding_size : int, default=64
    cell : {"gru", "lstm"}, default="gru"
    hidden_size : int, default=128
        Per direction.
    num_layers : int, default=1
    bidirectional : bool, default=True
    attention_size : int, default=64
    dropout : float, default=0.2
        On the embeddings, between layers and before the output layer.
    """

    KINDS: ClassVar[tuple[str, ...]] = ("smiles_rnn",)

    vocab_size: int
    kind: str = "smiles_rnn"
    n_outputs: int = 12
    embedding_size: int = 64
    cell: str = "gru"
    hidden_size: int = 128
    num_layers: int = 1
    bidirectional: bool = True
    attention_size: int = 64
    dropout: float = 0.2

    def _check_fields(self) -> None:
        owner = type(self).__name__
        check_int(owner, "vocab_size", self.vocab_size, 3)
        for name in ("n_outputs", "embedding_size", "hidden_size", "num_layers", "attention_size"):
            check_int(owner, name, getattr(self, name), 1)
        check_choice(owner, "cell", self.cell, CELLS)
        check_bool(owner, "bidirectional", self.bidirectional)
        object.__setattr__(self, "dropout", check_dropout(owner, self.dropout))


class SmilesRNN(nn.Module):
    r"""Multi-task classifier over tokenized SMILES.

    .. math::
        e_t &= \mathrm{dropout}(E[\text{tokens}_t]) \\
        o_{1..L} &= \mathrm{BiGRU}(e_{1..L}) \\
        p &= \textstyle\sum_{t<L} \alpha_t o_t \quad \text{(additive attention)} \\
        \text{logits} &= W\,\mathrm{dropout}(p) + b \in \mathbb{R}^{K}

    Inputs
    ------
    tokens : Tensor of shape (B, T), int64, 0 on padding; or (B, V, T): V SMILES of each
        molecule (test-time enumeration), whose logits are averaged
    lengths : Tensor of shape (B,), int64, in ``[1, T]`` (with (B, V, T) tokens, each
        variant's length is its count of non-padding tokens and ``lengths`` is unused)
    return_attention : bool, default=False
        Also return the attention weights over tokens ``(B, T')``, ``T' = max(lengths)``.

    Outputs
    -------
    logits : Tensor of shape (B, n_outputs)
    """

    def __init__(self, config: SmilesRNNConfig) -> None:
        super().__init__()
        if not isinstance(config, SmilesRNNConfig):
            raise TypeError(f"SmilesRNN needs a SmilesRNNConfig, got {type(config).__name__}")
        self.config = config
        c = config
        self.embedding = nn.Embedding(c.vocab_size, c.embedding_size, padding_idx=0)
        self.dropout = nn.Dropout(c.dropout)
        self.encoder = RecurrentEncoder(
            c.cell, c.embedding_size, c.hidden_size, c.num_layers, c.bidirectional, c.dropout
        )
        self.attention = AdditiveAttention(self.encoder.output_size, c.attention_size)
        self.out = nn.Linear(self.encoder.output_size, c.n_outputs)
        init_recurrent_(self)

    def forward(
        self, tokens: Tensor, lengths: Tensor, return_attention: bool = False
    ) -> Tensor | tuple[Tensor, Tensor]:
        if tokens.dim() == 3 and not return_attention:
            batch, n_variants, n_steps = tokens.shape
            flat = tokens.reshape(batch * n_variants, n_steps)
            logits = self(flat, (flat != 0).sum(dim=1).clamp_min(1))
            return logits.reshape(batch, n_variants, -1).mean(dim=1)  # (B, K)
        if tokens.dim() != 2 or tokens.is_floating_point():
            raise ValueError(
                f"SmilesRNN: tokens must be an integer tensor (B, T), got {tokens.dtype} "
                f"{tuple(tokens.shape)}"
            )
        if lengths.shape != tokens.shape[:1]:
            raise ValueError(
                f"SmilesRNN: lengths must have shape ({tokens.shape[0]},), "
                f"got {tuple(lengths.shape)}"
            )
        lengths = lengths.long().clamp(1, tokens.shape[1])
        # Batches come padded to the longest molecule of the whole set: run to this batch's.
        n_steps = int(lengths.max()) if not torch.jit.is_tracing() else tokens.shape[1]
        tokens = tokens[:, :n_steps].long()
        if int(tokens.max()) >= self.config.vocab_size or int(tokens.min()) < 0:
            raise ValueError(
                f"SmilesRNN: token ids must be in [0, {self.config.vocab_size}), got "
                f"[{int(tokens.min())}, {int(tokens.max())}]"
            )
        if torch.jit.is_tracing() or tokens.shape[0] <= BUCKET_SIZE:
            pooled, weights = self._pool(tokens, lengths)
        else:
            pooled, weights = self._pool_by_length(tokens, lengths)
        logits = self.out(self.dropout(pooled))  # (B, K)
        if return_attention:
            return logits, weights
        return logits

    def _pool(self, tokens: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor]:
        """``(B, T)`` -> attention-pooled ``(B, D)`` and weights ``(B, T)``."""
        x = self.dropout(self.embedding(tokens))  # (B, T, E)
        outputs = self.encoder(x, lengths)  # (B, T, D)
        return self.attention(outputs, lengths)

    def _pool_by_length(self, tokens: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor]:
        """:meth:`_pool` on length-sorted buckets of ``BUCKET_SIZE`` molecules.

        A batch is padded to its longest molecule (Tox21: median 26 tokens, longest 240),
        so one long salt makes the recurrence run hundreds of steps for every molecule.
        Each bucket runs only to its own longest member; since padding never reaches a valid
        step, the result equals the unbucketed one (up to float rounding) at about half the
        recurrent steps.
        """
        order = torch.argsort(lengths)
        pooled = torch.empty(tokens.shape[0], self.encoder.output_size, device=tokens.device)
        weights = torch.zeros(tokens.shape, device=tokens.device)
        for chunk in order.split(BUCKET_SIZE):
            steps = int(lengths[chunk].max())
            p, w = self._pool(tokens[chunk, :steps], lengths[chunk])
            pooled[chunk] = p
            weights[chunk, :steps] = w
        return pooled, weights
