"""Where FHIR R4 resources come from: Bundle JSON files, Bulk Data NDJSON, folders, archives.

:func:`iter_documents` yields, for each file, its name and its resources as parsed dicts
with the index of each (the Bundle entry index, or the NDJSON line number from 1).

Parsing, fastest first, by what is installed (same results, only the speed differs):
``msgspec`` decodes a Bundle into typed structs that keep only the fields the reader uses
(:data:`~medseq.sources._fhir_resources.FIELDS`) and skip the rest without building Python
objects (Claims and ExplanationOfBenefits are half of a Synthea Bundle), and decodes
NDJSON lines generically; else ``orjson``; else the standard ``json`` module. Resources of
types the reader does not use are passed on as ``{"resourceType": ...}`` only.

Malformed JSON raises :class:`~medseq.schema.DataError` naming the file and the entry (a
Bundle) or line (NDJSON) where parsing failed, or, under ``on_bad_entry="warn"/"skip"``,
the file (Bundle) or line (NDJSON) is skipped and counted as ``malformed_json``.
"""

from __future__ import annotations

import json
import logging
import tarfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from medseq.schema import DataError, OnBad, ReadReport
from medseq.sources._fhir_resources import FIELDS

logger = logging.getLogger(__name__)

_loads: Callable[[bytes], Any] = json.loads
_JSONError: tuple[type[Exception], ...] = (json.JSONDecodeError,)
try:  # pragma: no cover - which branch depends on the environment
    import orjson

    _loads, _JSONError = orjson.loads, (orjson.JSONDecodeError, *_JSONError)
except ImportError:  # pragma: no cover
    pass
try:  # pragma: no cover
    import msgspec

    _loads, _JSONError = msgspec.json.decode, (msgspec.DecodeError, *_JSONError)
except ImportError:  # pragma: no cover
    msgspec = None  # type: ignore[assignment]

#: Tests switch this off to check that the typed and the generic paths agree.
USE_TYPED_DECODER = msgspec is not None
_DECODER: Any = None


def _typed_decoder() -> Any:
    """A msgspec decoder of Bundles whose resources keep only :data:`FIELDS`."""
    global _DECODER
    if _DECODER is None:
        spec = [
            (
                name + "_" if name in ("class", "type", "id") else name,
                Any,
                msgspec.field(default=None, name=name),
            )
            for name in FIELDS
        ]
        resource = msgspec.defstruct("Resource", spec, omit_defaults=True)
        entry: Any = msgspec.defstruct(
            "Entry", [("fullUrl", Any, None), ("resource", resource | None, None)]
        )
        bundle = msgspec.defstruct(
            "Bundle",
            [("resourceType", Any, None), ("entry", list[entry] | None, None)],
        )
        _DECODER = msgspec.json.Decoder(bundle)
    return _DECODER


JSON_SUFFIXES = (".json",)
NDJSON_SUFFIXES = (".ndjson", ".jsonl")
ARCHIVE_SUFFIXES = (".tar", ".tar.gz", ".tgz", ".tar.xz", ".tar.bz2")


@dataclass
class Document:
    """One file's resources: ``(index, resource dict, fullUrl)`` triples, in file order."""

    name: str
    resources: list[tuple[int, Any, str | None]]


def _suffix_of(name: str) -> str:
    lower = name.lower()
    for suffix in ARCHIVE_SUFFIXES + NDJSON_SUFFIXES + JSON_SUFFIXES:
        if lower.endswith(suffix) or lower.endswith(suffix + ".gz"):
            return suffix
    return ""


def iter_documents(
    path: Path, report: ReadReport, on_bad_entry: OnBad, wanted: frozenset[str] = frozenset()
) -> Iterator[Document]:
    """Every FHIR document under ``path`` (a file, a folder, or a tar archive), sorted by name.

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    DataError
        If nothing readable is there, or (``on_bad_entry="raise"``) on malformed JSON.
    """
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file or folder")
    n_docs = 0
    for name, raw in _iter_raw(path, report):
        doc = parse_document(name, raw, report, on_bad_entry, wanted)
        if doc is not None:
            n_docs += 1
            yield doc
    if n_docs == 0:
        raise DataError(
            f"{path}: no FHIR files read (expected *.json Bundles or *.ndjson Bulk Data "
            "files, in a folder or a tar archive)"
        )


def _iter_raw(path: Path, report: ReadReport) -> Iterator[tuple[str, bytes]]:
    if path.is_dir():
        for file in sorted(p for p in path.rglob("*") if p.is_file()):
            if _suffix_of(file.name) in JSON_SUFFIXES + NDJSON_SUFFIXES:
                yield str(file), _read_bytes(file)
            else:
                report.add("ignored_file")
        return
    if _suffix_of(path.name) in ARCHIVE_SUFFIXES:
        yield from _iter_archive(path, report)
        return
    yield str(path), _read_bytes(path)


def _read_bytes(file: Path) -> bytes:
    data = file.read_bytes()
    if file.name.lower().endswith(".gz"):
        import gzip

        data = gzip.decompress(data)
    return data


def _iter_archive(path: Path, report: ReadReport) -> Iterator[tuple[str, bytes]]:
    """Members in archive order (streamed: a .tar.xz is decompressed once, front to back)."""
    with tarfile.open(path, mode="r:*") as tar:
        for member in tar:
            if not member.isfile():
                continue
            if _suffix_of(member.name) not in JSON_SUFFIXES + NDJSON_SUFFIXES:
                report.add("ignored_file")
                continue
            handle = tar.extractfile(member)
            if handle is None:  # pragma: no cover - isfile() members always have data
                continue
            data = handle.read()
            if member.name.lower().endswith(".gz"):
                import gzip

                data = gzip.decompress(data)
            yield f"{path}:{member.name}", data


def parse_document(
    name: str,
    raw: bytes,
    report: ReadReport,
    on_bad_entry: OnBad,
    wanted: frozenset[str] = frozenset(),
) -> Document | None:
    """Parse one file's bytes (Bundle, single resource, or NDJSON by its suffix).

    ``wanted``: the resource types whose fields are needed; the typed decoder passes the
    others on as ``{"resourceType": <type>}``.
    """
    if _suffix_of(name.rsplit(":", 1)[-1]) in NDJSON_SUFFIXES:
        return Document(name, _parse_ndjson(name, raw, report, on_bad_entry))
    if USE_TYPED_DECODER:
        typed = _parse_typed(name, raw, wanted)
        if typed is not None:
            return typed
    try:
        obj = _loads(raw)
    except _JSONError as err:
        entry = locate_bad_entry(raw)
        where = f"entry {entry}" if entry is not None else "outside the entry list"
        message = f"{name}: malformed JSON in {where} ({err})"
        if on_bad_entry == "raise":
            raise DataError(message + "; fix the file or pass on_bad_entry='warn'") from None
        report.add("malformed_json")
        if on_bad_entry == "warn":
            logger.warning("%s; file skipped", message)
        return None
    if not isinstance(obj, dict):
        raise DataError(f"{name}: expected a JSON object (a Bundle or a resource), got {obj!r:.40}")
    if obj.get("resourceType") == "Bundle":
        entries = obj.get("entry") or []
        return Document(name, [_entry(i, e) for i, e in enumerate(entries)])
    return Document(name, [(0, obj, None)])


def _parse_typed(name: str, raw: bytes, wanted: frozenset[str]) -> Document | None:
    """The fast path; None when the file is not a well-formed Bundle of objects (the
    generic path then reads it and reports exactly what is wrong)."""
    try:
        bundle = _typed_decoder().decode(raw)
    except (msgspec.DecodeError, msgspec.ValidationError):
        return None
    if bundle.resourceType != "Bundle":
        return None
    out: list[tuple[int, Any, str | None]] = []
    for i, entry in enumerate(bundle.entry or ()):
        res = entry.resource
        if res is None:
            out.append((i, None, entry.fullUrl))
        elif res.resourceType in wanted:
            out.append((i, msgspec.to_builtins(res), entry.fullUrl))
        else:
            out.append((i, {"resourceType": res.resourceType}, entry.fullUrl))
    return Document(name, out)


def _entry(index: int, entry: Any) -> tuple[int, Any, str | None]:
    if not isinstance(entry, dict):
        return (index, None, None)
    return (index, entry.get("resource"), entry.get("fullUrl"))


def _parse_ndjson(
    name: str, raw: bytes, report: ReadReport, on_bad_entry: OnBad
) -> list[tuple[int, Any, str | None]]:
    out: list[tuple[int, Any, str | None]] = []
    for line_no, line in enumerate(raw.splitlines(), start=1):
        if not line.strip():
            report.add("blank_line")
            continue
        try:
            out.append((line_no, _loads(line), None))
        except _JSONError as err:
            message = f"{name}:{line_no}: malformed JSON ({err})"
            if on_bad_entry == "raise":
                raise DataError(message + "; fix the line or pass on_bad_entry='warn'") from None
            report.add("malformed_json")
            if on_bad_entry == "warn":
                logger.warning("%s; line skipped", message)
    return out


def locate_bad_entry(raw: bytes) -> int | None:
    """Index of the first Bundle entry that does not parse, or None if the fault is elsewhere.

    Only called after a parse failed, so it can be slow: the standard library decodes the
    ``"entry"`` array one element at a time.
    """
    text = raw.decode("utf-8", errors="replace")
    key = text.find('"entry"')
    start = text.find("[", key) if key >= 0 else -1
    if start < 0:
        return None
    decoder = json.JSONDecoder()
    pos, index = start + 1, 0
    while True:
        while pos < len(text) and text[pos] in " \t\r\n,":
            pos += 1
        if pos >= len(text) or text[pos] == "]":
            return None
        try:
            _, pos = decoder.raw_decode(text, pos)
        except json.JSONDecodeError:
            return index
        index += 1
