"""Settings of ``medseq serve``: a frozen dataclass, tokens from a file or the environment."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from medseq.drift.window import DriftSettings

TOKENS_ENV = "MEDSEQ_SERVE_TOKENS"
MIN_TOKEN_LENGTH = 16


def read_tokens(token_file: str | Path | None = None) -> tuple[str, ...]:
    """Bearer tokens: one per line of ``token_file``, plus ``$MEDSEQ_SERVE_TOKENS`` (comma list).

    Raises
    ------
    ValueError
        If no token is configured, or one is shorter than 16 characters (a placeholder
        such as ``changeme`` must not protect patient data).
    """
    tokens: list[str] = []
    if token_file is not None:
        lines = Path(token_file).read_text().splitlines()
        tokens += [t.strip() for t in lines if t.strip() and not t.startswith("#")]
    tokens += [t.strip() for t in os.environ.get(TOKENS_ENV, "").split(",") if t.strip()]
    if not tokens:
        raise ValueError(
            f"no API token configured: set {TOKENS_ENV}=<token>[,<token>...] or pass "
            "--token-file; every request except /healthz needs 'Authorization: Bearer <token>'"
        )
    short = [i for i, t in enumerate(tokens) if len(t) < MIN_TOKEN_LENGTH]
    if short:
        raise ValueError(
            f"API tokens must have at least {MIN_TOKEN_LENGTH} characters; token(s) number "
            f"{[i + 1 for i in short]} are shorter (generate one with "
            "`python -c 'import secrets; print(secrets.token_urlsafe(32))'`)"
        )
    return tuple(tokens)


@dataclass(frozen=True)
class ServeSettings:
    """Everything the service needs besides the bundle.

    Parameters
    ----------
    tokens : tuple of str
        Accepted bearer tokens (:func:`read_tokens`).
    state_db : str, default=":memory:"
        SQLite file of the streaming states; ``":memory:"`` keeps nothing across restarts.
    synchronous : {"NORMAL", "FULL"}, default="NORMAL"
        SQLite durability (see :mod:`medseq.serving.store`).
    max_body_bytes : int, default=8 MiB
        Larger requests are answered 413 before they are read.
    alert_threshold : float or None, default=None
        Risk at which a patient's alert turns on; None: the bundle's decision threshold.
    alert_hysteresis : float, default=0.02
        The alert turns off only below ``alert_threshold - alert_hysteresis``.
    alert_onset_steps, alert_clear_steps : int, default=1
        Engines that advance whole steps (the sepsis model's ICU hours): the alert turns on
        after this many consecutive steps at or above the threshold, and off after this many
        below it (:class:`~medseq.serving.engine.AlertPolicy`).
    max_future_minutes : float, default=5.0
        FHIR times later than now plus this clock skew are refused (422).
    drift : DriftSettings, default=DriftSettings()
        Sliding window and thresholds of the drift monitor (``GET /v1/drift``).
    worker_threads : int, default=4
        Requests parsed, validated and scored at once, off the event loop
        (:mod:`medseq.serving.pool`); more wait their turn.
    inline_body_bytes : int, default=4096
        A streaming update body up to this size is applied on the event loop when no
        other update is being applied (less work than a thread hand-over); 0: never.
    max_connections : int, default=512
        Open connections; one more is answered 503 and closed at once
        (:mod:`medseq.serving.protocol`).
    header_timeout_s : float, default=10.0
        A request's headers must be complete this long after its first byte (or after
        the connection opens); else the connection is closed.
    body_timeout_s : float, default=60.0
        A request's body must be complete this long after its headers; else closed.
    keep_alive_s : float, default=5.0
        An idle keep-alive connection is closed after this long.
    max_cached_patients : int, default=10_000
        Streaming states kept in memory, least recently used evicted (they stay in the
        state database and are reloaded on the next request): bounds the memory.
    warm_patients : int, default=1_000
        Of those, the most recently used kept as live objects; the others are held packed
        (one compressed ``bytes`` each, lossless; :mod:`medseq.serving.compact`), which
        is what keeps a full cache of 10,000 within 50 MB.
    max_cached_streams : int, default=1000
        Signal-stream detectors kept in memory (about 100 KB each), least recently used
        evicted after a checkpoint; reloaded from the state database on the next chunk.
    retention_hours : float or None, default=None
        A stay without an update for this long is deleted (state, observations, ids) by a
        periodic sweep; None keeps stays until ``DELETE /v1/patients/{id}``.
    retention_sweep_seconds : float, default=300
        Interval of the retention sweep.
    group_commit : bool, default=True
        The streaming updates of one event-loop turn share one SQLite commit, each
        answered after it (:mod:`medseq.serving.group_commit`); False: one commit each.
    """

    tokens: tuple[str, ...] = field(repr=False)
    state_db: str = ":memory:"
    synchronous: str = "NORMAL"
    max_body_bytes: int = 8 * 1024 * 1024
    alert_threshold: float | None = None
    alert_hysteresis: float = 0.02
    alert_onset_steps: int = 1
    alert_clear_steps: int = 1
    max_future_minutes: float = 5.0
    drift: DriftSettings = field(default_factory=DriftSettings)
    worker_threads: int = 4
    inline_body_bytes: int = 4096
    max_connections: int = 512
    header_timeout_s: float = 10.0
    body_timeout_s: float = 60.0
    keep_alive_s: float = 5.0
    max_cached_patients: int = 10_000
    warm_patients: int = 1_000
    max_cached_streams: int = 1000
    retention_hours: float | None = None
    retention_sweep_seconds: float = 300.0
    group_commit: bool = True

    def __post_init__(self) -> None:
        if not self.tokens:
            raise ValueError("ServeSettings.tokens must hold at least one token")
        if self.max_body_bytes < 1024:
            raise ValueError(f"max_body_bytes must be >= 1024, got {self.max_body_bytes}")
        if self.max_future_minutes < 0:
            raise ValueError(f"max_future_minutes must be >= 0, got {self.max_future_minutes}")
        if self.inline_body_bytes < 0:
            raise ValueError(f"inline_body_bytes must be >= 0, got {self.inline_body_bytes}")
        for name in ("worker_threads", "max_connections"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in ("header_timeout_s", "body_timeout_s", "keep_alive_s"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)}")
        if self.max_cached_patients < 1:
            raise ValueError(f"max_cached_patients must be >= 1, got {self.max_cached_patients}")
        if self.warm_patients < 0:
            raise ValueError(f"warm_patients must be >= 0, got {self.warm_patients}")
        if self.max_cached_streams < 1:
            raise ValueError(f"max_cached_streams must be >= 1, got {self.max_cached_streams}")
        if self.retention_hours is not None and not self.retention_hours > 0:
            raise ValueError(f"retention_hours must be > 0 (or None), got {self.retention_hours}")
        if not self.retention_sweep_seconds > 0:
            raise ValueError(
                f"retention_sweep_seconds must be > 0, got {self.retention_sweep_seconds}"
            )
