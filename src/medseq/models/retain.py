r"""RETAIN (Choi et al., 2016): reverse-time attention over visits and over their codes.

Choi E, Bahadori MT, Kulas JA, Schuetz A, Stewart WF, Sun J. *RETAIN: An Interpretable
Predictive Model for Healthcare using Reverse Time Attention Mechanism.* NeurIPS 2016.

Two GRUs read the visit embeddings from the most recent visit backwards. One gives a
scalar per visit, softmaxed over the visits into the visit-level attention ``alpha``; the
other gives a vector per visit, squashed by tanh into the code-level (embedding-dimension)
attention ``beta``. The context is the attention-weighted sum of the visit embeddings and
the logit is linear in it, so the logit splits exactly into one contribution per code in
each visit (the paper's eq. 6):

.. math::
    \omega_k(x_{j,c}) = \alpha_j\, W_k (\beta_j \odot W_{emb}[:, c])\, x_{j,c},
    \qquad \textstyle\sum_{j, c} \omega_k(x_{j,c}) = \text{logit}_k - b_k

:meth:`Retain.contributions` returns them; ``medseq explain`` shows them per visit and code.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, cast

import torch
from torch import Tensor, nn

from medseq.models.config_base import ModelConfigBase
from medseq.models.config_checks import check_dropout, check_int
from medseq.models.init import init_recurrent_
from medseq.models.pooling import valid_steps
from medseq.models.sequence_classifier import reverse_within_length


@dataclass(frozen=True)
class RetainConfig(ModelConfigBase):
    """Hyperparameters of :class:`Retain`.

    Parameters
    ----------
    vocab_size : int
        Columns of the multi-hot visit vectors (from the fitted featurizer).
    kind : "retain"
    n_outputs : int, default=1
    embedding_size : int, default=64
        ``m`` in the paper.
    alpha_hidden_size, beta_hidden_size : int, default=64
        Hidden sizes of the visit-level and code-level attention GRUs.
    dropout_embedding, dropout_context : float, default=0.3
        Dropout on the visit embeddings (fed to the GRUs) and on the context vector, as in
        the paper; neither is active in evaluation, where contributions are exact.
    """

    KINDS: ClassVar[tuple[str, ...]] = ("retain",)

    vocab_size: int
    kind: str = "retain"
    n_outputs: int = 1
    embedding_size: int = 64
    alpha_hidden_size: int = 64
    beta_hidden_size: int = 64
    dropout_embedding: float = 0.3
    dropout_context: float = 0.3

    def _check_fields(self) -> None:
        owner = type(self).__name__
        check_int(owner, "vocab_size", self.vocab_size, 2)
        for name in ("n_outputs", "embedding_size", "alpha_hidden_size", "beta_hidden_size"):
            check_int(owner, name, getattr(self, name), 1)
        for name in ("dropout_embedding", "dropout_context"):
            object.__setattr__(self, name, check_dropout(owner, getattr(self, name), name))


class Retain(nn.Module):
    r"""RETAIN over multi-hot visits.

    .. math::
        v_j &= W_{emb} x_j \\
        g_j, h_j &= \mathrm{GRU}_\alpha, \mathrm{GRU}_\beta(v_L, \dots, v_j)
            \quad \text{(reverse time, within each length)} \\
        \alpha &= \mathrm{softmax}_j(w_\alpha^\top g_j + b_\alpha), \qquad
        \beta_j = \tanh(W_\beta h_j + b_\beta) \\
        c &= \textstyle\sum_{j<L} \alpha_j\, \beta_j \odot v_j, \qquad
        \text{logits} = W c + b

    Inputs
    ------
    visits : Tensor of shape (B, T, C), float, multi-hot, zero after ``lengths``
    lengths : Tensor of shape (B,), int64, in ``[1, T]``
    return_attention : bool, default=False
        Also return ``alpha`` (B, T) (0 on padding) and ``beta`` (B, T, m).

    Outputs
    -------
    logits : Tensor of shape (B, n_outputs)
    """

    def __init__(self, config: RetainConfig) -> None:
        super().__init__()
        if not isinstance(config, RetainConfig):
            raise TypeError(f"Retain needs a RetainConfig, got {type(config).__name__}")
        self.config = c = config
        self.embedding = nn.Linear(c.vocab_size, c.embedding_size, bias=False)
        self.dropout_embedding = nn.Dropout(c.dropout_embedding)
        self.dropout_context = nn.Dropout(c.dropout_context)
        self.alpha_rnn = nn.GRU(c.embedding_size, c.alpha_hidden_size, batch_first=True)
        self.beta_rnn = nn.GRU(c.embedding_size, c.beta_hidden_size, batch_first=True)
        self.alpha_out = nn.Linear(c.alpha_hidden_size, 1)
        self.beta_out = nn.Linear(c.beta_hidden_size, c.embedding_size)
        self.out = nn.Linear(c.embedding_size, c.n_outputs)
        init_recurrent_(self)

    def _attend(self, visits: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        if visits.ndim != 3 or visits.shape[2] != self.config.vocab_size:
            raise ValueError(
                f"Retain: visits must be (B, T, {self.config.vocab_size}), "
                f"got {tuple(visits.shape)}"
            )
        lengths = lengths.to(visits.device)
        v = self.embedding(visits)  # (B, T, m)
        backwards = reverse_within_length(self.dropout_embedding(v), lengths)
        g = reverse_within_length(self.alpha_rnn(backwards)[0], lengths)  # (B, T, Ha)
        h = reverse_within_length(self.beta_rnn(backwards)[0], lengths)  # (B, T, Hb)
        scores = self.alpha_out(g).squeeze(-1)  # (B, T)
        scores = scores.masked_fill(~valid_steps(lengths, visits.shape[1]), float("-inf"))
        alpha = torch.softmax(scores, dim=1)  # (B, T), 0 on padding
        beta = torch.tanh(self.beta_out(h))  # (B, T, m)
        return v, alpha, beta

    def forward(
        self, visits: Tensor, lengths: Tensor, return_attention: bool = False
    ) -> Tensor | tuple[Tensor, Tensor, Tensor]:
        v, alpha, beta = self._attend(visits, lengths)
        context = (alpha.unsqueeze(-1) * beta * v).sum(dim=1)  # (B, m)
        logits = self.out(self.dropout_context(context))
        return (logits, alpha, beta) if return_attention else logits

    @torch.no_grad()
    def contributions(self, visits: Tensor, lengths: Tensor) -> dict[str, Tensor]:
        """Each code's contribution to each logit, per visit (evaluation mode).

        Returns
        -------
        dict with ``contributions`` (B, T, C, n_outputs) (0 where the code is absent),
        ``alpha`` (B, T), ``logits`` (B, n_outputs) and ``bias`` (n_outputs,); summed over
        visits and codes the contributions equal ``logits - bias``.
        """
        was_training = self.training
        self.eval()
        try:
            _, alpha, beta = self._attend(visits, lengths)
            logits = cast(Tensor, self.forward(visits, lengths))  # no attention asked
        finally:
            self.train(was_training)
        w_emb = self.embedding.weight  # (m, C)
        w_out = self.out.weight  # (K, m)
        per_code = torch.einsum("km,btm,mc->btck", w_out, beta, w_emb)  # (B, T, C, K)
        omega = per_code * (alpha.unsqueeze(-1) * visits).unsqueeze(-1)
        return {
            "contributions": omega,
            "alpha": alpha,
            "logits": logits,
            "bias": self.out.bias.detach().clone(),
        }
