"""Open stays of the streaming API: engine + in-memory states + the SQLite store.

Every update is applied to the patient's state, then the new state and the applied
observations are committed in one SQLite transaction, and only then answered. If the
commit fails, the in-memory copy is dropped (the next request reloads the last committed
state), so memory never runs ahead of what was acknowledged. A state stored by another
bundle (another ``model_version``) is rebuilt by replaying the stored observations.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from medseq.bundle import Bundle
from medseq.serving.engine import (
    AlertPolicy,
    ObservationError,
    PatientState,
    StreamingEngine,
    UpdateResult,
)
from medseq.serving.inputs import History
from medseq.serving.recurrent import StreamingUnsupported
from medseq.serving.store import StateStore

logger = logging.getLogger(__name__)


@dataclass
class OpenStay:
    """A patient's state and the absolute admission time (FHIR input), if known."""

    state: PatientState
    admission_time: str | None


class StreamService:
    """Streaming updates of many patients; see the module doc.

    Parameters
    ----------
    bundle : Bundle
    model_version : str
    store : StateStore
    alert : AlertPolicy
    """

    def __init__(
        self, bundle: Bundle, model_version: str, store: StateStore, alert: AlertPolicy
    ) -> None:
        self.model_version = model_version
        self.store = store
        self.unsupported: str | None = None
        self.engine: StreamingEngine | None = None
        try:
            self.engine = self._make_engine(bundle, alert)
        except StreamingUnsupported as err:
            self.unsupported = str(err)
            logger.warning("streaming endpoints disabled: %s", err)
        self._open: dict[str, OpenStay] = {}

    def _make_engine(self, bundle: Bundle, alert: AlertPolicy) -> Any:
        """The engine advancing states; a dataset's streaming part may subclass for another
        (e.g. whole ICU hours); raises :class:`StreamingUnsupported` when impossible."""
        return StreamingEngine(bundle, alert)

    def _require_engine(self) -> StreamingEngine:
        if self.engine is None:
            raise StreamingUnsupported(self.unsupported or "streaming is not available")
        return self.engine

    def get(self, patient_id: str) -> OpenStay | None:
        """The open stay of ``patient_id`` (memory, else store), or None."""
        stay = self._open.get(patient_id)
        if stay is not None:
            return stay
        stored = self.store.load(patient_id)
        if stored is None:
            return None
        state = stored.state
        if stored.model_version != self.model_version:
            state = self._replay(patient_id, state)
        stay = OpenStay(state, stored.admission_time)
        self._open[patient_id] = stay
        return stay

    def _replay(self, patient_id: str, old: PatientState) -> PatientState:
        engine = self._require_engine()
        static = {k: v for k, v in old.features.static_raw.items() if v == v}
        state = engine.new_state(static)
        engine.update(state, self.store.observations(patient_id))
        logger.info("rebuilt one stored state for the current model by replay")
        return state

    def update(self, patient_id: str, history: History) -> tuple[OpenStay, UpdateResult]:
        """Apply a request's observations; commit; return the stay and the result.

        Raises
        ------
        ObservationError
            Nothing was applied (e.g. an observation before the open bin).
        """
        engine = self._require_engine()
        stay = self.get(patient_id)
        if stay is None:
            stay = OpenStay(engine.new_state(), history.admission_time)
        engine.check(stay.state, history.observations)  # a refusal changes nothing
        try:
            result = engine.update(stay.state, history.observations, history.static)
            skipped_idx = {s["index"] for s in result.skipped}
            applied = [o for i, o in enumerate(history.observations) if i not in skipped_idx]
            version, admitted = self.model_version, stay.admission_time
            self.store.save(patient_id, version, admitted, stay.state, applied)
        except Exception:
            self._open.pop(patient_id, None)  # reload the last committed state next time
            raise
        self._open[patient_id] = stay
        return stay, result

    def discharge(self, patient_id: str) -> OpenStay | None:
        """End a stay: its final state, or None if unknown; the stored rows are deleted."""
        stay = self.get(patient_id)
        if stay is None:
            return None
        self.store.delete(patient_id)
        self._open.pop(patient_id, None)
        return stay

    def n_open(self) -> int:
        return self.store.count()

    def describe(self) -> dict[str, Any]:
        """Streaming part of the model card."""
        info: dict[str, Any] = {"supported": self.engine is not None}
        if self.engine is None:
            info["reason"] = self.unsupported
        else:
            policy = self.engine.alert
            info["alert"] = {"threshold": policy.on, "hysteresis": policy.hysteresis}
        return info


__all__ = ["ObservationError", "OpenStay", "StreamService"]
