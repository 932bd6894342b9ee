"""The body of ``POST /v1/predict``: the small protocol a dataset's request parser implements.

The service serves any bundle without knowing its modality: it looks up the bundle's dataset
spec (``bundle.provenance["dataset"]``), takes its ``request`` part (or its ``fhir`` part
when the body is a FHIR R4 ``Bundle``) and calls::

    parsed = part.parse(body, context)              # -> Parsed(data, ids, names, notes)
    arrays = spec.transform(bundle.featurizer, parsed.data, parsed.ids)
    scores = bundle.predict_arrays(arrays)

so a request goes through the very transform that training and ``medseq predict`` use
(design principle 1: no training/serving skew). Each dataset module in
:mod:`medseq.datasets` defines its parsers; this module holds only what they share and is
light to import (no pydantic, FastAPI or torch at import time), so a dataset module can
import it in a training-only install.

A parser raises :class:`RequestError` with the path of the offending field
(``["body", "records", 0, "fs_hz"]``); the service answers it 422 with that path, never a
500. A featurizer that needs a module the install lacks (wfdb for XQRS peaks, RDKit for
canonical SMILES) is refused with :class:`RequestUnavailable` naming the extra to install.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Protocol, runtime_checkable

import numpy as np

#: Items (patients, records, molecules, volumes) in one request; the body-size limit of the
#: service (``max_body_bytes``) applies first.
MAX_ITEMS = 256
#: ``id`` values of the request: no spaces, at most 64 characters.
ITEM_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"
#: Errors kept in one 422 answer; the rest are counted in a last entry.
MAX_ERRORS = 50


def capped(
    errors: Sequence[dict[str, Any]], limit: int = MAX_ERRORS, total: int | None = None
) -> list[dict[str, Any]]:
    """The first ``limit`` errors, then one entry saying how many more there were
    (``total`` errors in all; default ``len(errors)``).

    An 8 MB body of invalid rows has hundreds of thousands of errors; answering all of
    them made a 422 of 9-32 MB.
    """
    total = len(errors) if total is None else total
    if total <= limit:
        return list(errors[:limit])
    more = {"loc": ["body"], "msg": f"and {total - limit} more", "type": "too_many_errors"}
    return [*errors[:limit], more]


class RequestError(ValueError):
    """Bad input for a 422 answer: ``errors`` are pydantic-style ``{loc, msg, type}``."""

    def __init__(self, errors: list[dict[str, Any]], n_errors: int | None = None) -> None:
        #: how many errors there were (``errors`` keeps the first :data:`MAX_ERRORS`)
        self.n_errors = len(errors) if n_errors is None else n_errors
        errors = capped(errors, total=self.n_errors)
        super().__init__("; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in errors))
        self.errors = errors

    def first(self) -> list[dict[str, Any]]:
        """The kept errors without the closing ``and N more`` entry (to merge several)."""
        return self.errors[:MAX_ERRORS]

    @classmethod
    def at(cls, loc: Sequence[Any], msg: str, kind: str = "value_error") -> RequestError:
        """One error at ``loc`` (``("body", "records", 0, "samples")``)."""
        return cls([{"loc": list(loc), "msg": msg, "type": kind}])

    @classmethod
    def from_validation(cls, err: Any, prefix: tuple = ("body",)) -> RequestError:
        """Keep ``loc``, ``msg`` and ``type`` of a pydantic error; drop the echoed input
        (no values in answers: they may be patient data)."""
        return cls(
            [
                {"loc": [*prefix, *e["loc"]], "msg": e["msg"], "type": e["type"]}
                for e in err.errors(include_url=False)
            ]
        )


class RequestUnavailable(RuntimeError):
    """This install cannot featurise the request (a module of an extra is missing); 503."""


@dataclass(frozen=True)
class RequestContext:
    """What a parser may need besides the body.

    Attributes
    ----------
    featurizer : object
        The bundle's fitted featurizer (e.g. the ICU window, the signal's target rate).
    task : str
        The bundle's dataset task (``provenance["task"]``), e.g. ``"next_visit"``.
    now : datetime
        The server's clock (UTC), to refuse far-future FHIR times.
    max_future : timedelta
        Allowed clock skew of FHIR times.
    request_state : mapping
        What training stored of its data for the parser (the spec's ``request_state``,
        kept in ``provenance["request_state"]``; e.g. a flat export's table mapping);
        empty when the bundle stores none.
    """

    featurizer: Any
    task: str = ""
    now: datetime = field(default_factory=lambda: datetime.now(timezone.utc))
    max_future: timedelta = timedelta(minutes=5)
    request_state: Mapping[str, Any] = field(default_factory=dict)


@dataclass
class Parsed:
    """A request as the dataset's own ``data`` object and the ids to predict, in order.

    Attributes
    ----------
    data : object
        What ``spec.transform(featurizer, data, ids)`` takes.
    ids : ndarray of int64, shape (N,)
        The sample ids of ``data`` to predict, one per answered item.
    names : list of str
        The request's id of each item (``patient_id``, ``record_id``, ...), answered back.
    notes : list of dict
        Per item, modality-specific facts added to its answer (e.g. ``n_events_used`` and
        ``skipped`` observations); empty dicts when there is nothing to add.
    steps : list of list of int, optional
        For a per-step (sequence-labelling) model: per item, the request's label of each
        step to answer (the ICU hour, the epoch number), in the order of the model's output
        steps from the first. None (the default): one answer per item.
    locs : list of tuple, optional
        Per item, the body location of its input (``("body", "records", 0, "samples")``),
        where a featurizer's refusal of that item is reported. None: at ``("body",)``.
    """

    data: Any
    ids: np.ndarray
    names: list[str]
    notes: list[dict[str, Any]] = field(default_factory=list)
    steps: list[list[int]] | None = None
    locs: list[tuple[str | int, ...]] | None = None

    def __post_init__(self) -> None:
        self.ids = np.asarray(self.ids, dtype=np.int64)
        if not self.notes:
            self.notes = [{} for _ in self.names]
        if not len(self.ids) == len(self.names) == len(self.notes):
            raise ValueError(
                f"Parsed: {len(self.ids)} ids, {len(self.names)} names, {len(self.notes)} notes"
            )
        if self.steps is not None and len(self.steps) != len(self.ids):
            raise ValueError(f"Parsed: {len(self.steps)} step lists for {len(self.ids)} ids")
        if self.locs is not None and len(self.locs) != len(self.ids):
            raise ValueError(f"Parsed: {len(self.locs)} locations for {len(self.ids)} ids")


@runtime_checkable
class PredictBody(Protocol):
    """A dataset's ``request`` (or ``fhir``) part: one JSON body form of ``/v1/predict``.

    Attributes
    ----------
    modality : str
        What the body holds, for the model card and the docs (``"ecg"``, ``"icu"``, ...).
    example : dict
        A valid body, shown in the OpenAPI schema and in ``docs/serving.md``.
    """

    modality: str
    example: dict[str, Any]

    def parse(self, body: Any, context: RequestContext) -> Parsed:
        """The body as :class:`Parsed`; :class:`RequestError` naming the bad field."""
        ...


def validate(model: Any, obj: Any, prefix: tuple = ("body",)) -> Any:
    """``model.model_validate(obj)`` (a pydantic model) with errors as :class:`RequestError`."""
    import pydantic

    try:
        return model.model_validate(obj)
    except pydantic.ValidationError as err:
        raise RequestError.from_validation(err, prefix) from None


def is_fhir_bundle(obj: Any) -> bool:
    """Whether a JSON body is a FHIR ``Bundle`` (``"resourceType": "Bundle"``)."""
    return isinstance(obj, dict) and obj.get("resourceType") == "Bundle"


def fhir_bundle(obj: dict[str, Any], max_entries: int | None = None) -> Any:
    """The body validated as a FHIR R4 Bundle (``fhir.resources`` R4B models).

    ``fhir.resources`` 7+ ships R5 by default and R4B, not R4; Observation, Patient,
    Encounter and Bundle are normative since R4 and unchanged in R4B, so an R4 Bundle
    validates as is. An invalid one is a :class:`RequestError` whose ``loc`` is the path in
    the Bundle (``body.entry.3.resource.valueQuantity.value``). The raw body is first
    checked against :mod:`medseq.serving.fhir_bounds` (Bundle type, at most
    ``max_entries`` entries, default ``MAX_FHIR_ENTRIES``, known resource types, dates as
    strings).
    """
    from medseq.serving.fhir_bounds import MAX_FHIR_ENTRIES, check_bundle

    check_bundle(obj, MAX_FHIR_ENTRIES if max_entries is None else max_entries)
    entries = obj.get("entry")
    if not isinstance(entries, list):
        return _fhir_validate("Bundle", obj, ("body",))
    # entry by entry: pydantic holds the GIL for a whole call, and 20,000 entries in one
    # call kept the event loop (/healthz, other patients) waiting for seconds
    head = _fhir_validate("Bundle", {k: v for k, v in obj.items() if k != "entry"}, ("body",))
    validated, n_errors = [], 0
    errors: list[dict[str, Any]] = []
    for i, entry in enumerate(entries):
        try:
            validated.append(_fhir_validate("BundleEntry", entry, ("body", "entry", i)))
        except RequestError as err:
            errors += err.first() if len(errors) < MAX_ERRORS else []
            n_errors += err.n_errors
    if errors:
        raise RequestError(errors, n_errors)
    if validated:
        head.entry = validated
    return head


def _fhir_validate(model: str, obj: Any, prefix: tuple) -> Any:
    import pydantic
    from fhir.resources.R4B import bundle

    try:
        return getattr(bundle, model).model_validate(obj)
    except pydantic.ValidationError as err:
        raise RequestError.from_validation(err, prefix) from None
    except (TypeError, ValueError, KeyError) as err:  # fhir_core raises these for some
        # shapes (KeyError: a resourceType that is no FHIR type); the message is not
        # echoed, it holds request content
        raise RequestError.at(prefix, f"invalid FHIR {model}: {type(err).__name__}") from None


def fhir_subject(resource: Any, index: int, key: str = "subject") -> str | None:
    """``<id>`` of a resource's ``Patient/<id>`` reference (None when it has none)."""
    ref = getattr(resource, key, None)
    text = getattr(ref, "reference", None) if ref is not None else None
    if not text:
        return None
    if not text.startswith("Patient/") or len(text) == len("Patient/"):
        raise RequestError.at(
            ("body", "entry", index, "resource", key, "reference"),
            "must be a relative reference Patient/<id>",
        )
    return text[len("Patient/") :]


def require_module(module: str, extra: str, what: str) -> None:
    """Refuse with :class:`RequestUnavailable` when ``module`` cannot be imported.

    ``what`` says what needs it (``"this bundle's XQRS beat detection"``).
    """
    import importlib.util

    if importlib.util.find_spec(module) is None:
        raise RequestUnavailable(
            f"{what} needs the optional module {module!r}, which this install lacks: "
            f"pip install 'medseq[{extra}]'"
        )


def item_ids(names: Sequence[str], loc: tuple) -> None:
    """Refuse repeated request ids (each answer must be attributable to one item)."""
    if len(set(names)) != len(names):
        raise RequestError.at(loc, "id values must be distinct")


@dataclass(frozen=True)
class LazyBody:
    """A :class:`PredictBody` whose parser is imported on the first request.

    Dataset modules build their spec at import time; their parsers import pydantic,
    ``fhir.resources`` or the featurizer's signal code, which a training-only install may
    lack, so the spec names the parser (``"medseq.datasets.tox21_serving:parse"``) and
    this wrapper imports it when a body arrives.
    """

    target: str
    modality: str
    example: dict[str, Any] = field(default_factory=dict, hash=False, compare=False)

    def parse(self, body: Any, context: RequestContext) -> Parsed:
        """``target(body, context)``."""
        from medseq._imports import load_object

        return load_object(self.target)(body, context)


@dataclass(frozen=True)
class LazyModule:
    """A spec part implemented by a module imported on first use (e.g. streaming).

    The streaming part's module defines ``open_service(bundle, version, store, alert,
    **options)`` (options: ``max_cached_patients``),
    ``observations(body, patient_id, admission, context) -> (History, loc prefix)`` and
    ``describe(featurizer) -> dict``; where the stays advance through the per-observation
    :class:`~medseq.serving.engine.StreamingEngine`, also
    ``stream_features(featurizer)``, the featurizer's incremental form.
    """

    module: str

    def load(self) -> Any:
        """The imported module."""
        import importlib

        return importlib.import_module(self.module)
