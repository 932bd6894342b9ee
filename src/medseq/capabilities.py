"""What works for which dataset: the capability matrix, datasets × stages, from the registry.

Every cell is computed by asking the dataset's spec (:class:`~medseq.datasets.DatasetSpec`),
never from a list kept by hand: a stage's rule is a small function of the spec, and a cell
that is not supported carries its reason, either the spec's own sentence
(``spec.unsupported``, keyed by the stage or by the part the stage needs) or the part the
spec lacks. ``medseq capabilities`` prints the matrix, and the README holds the same
markdown between the markers :data:`README_START` and :data:`README_END`; a test
regenerates it so the two cannot drift. After adding a dataset or a spec part, regenerate
it with::

    medseq capabilities --format markdown --write-readme README.md

A command that a cell marks unsupported refuses with the same sentence
(:func:`require_stage`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from medseq.datasets.registry import DATASETS, DatasetSpec, StageUnsupported, get_dataset

README_START = "<!-- capabilities:start -->"
README_END = "<!-- capabilities:end -->"
#: Where streaming lives: routes of ``medseq serve`` (there is no streaming flag).
STREAMING_ROUTES = "streaming in medseq serve (/v1/patients/..., /v1/streams/...)"


@dataclass(frozen=True)
class Cell:
    """One dataset × stage: supported, or the sentence saying why not."""

    supported: bool
    reason: str = ""


@dataclass(frozen=True)
class Stage:
    """A stage of the matrix: its key (as in ``spec.unsupported``), title, the spec parts it
    needs (empty: none beyond the core spec) and how the user runs it."""

    key: str
    title: str
    parts: tuple[str, ...]
    command: str


STAGES: tuple[Stage, ...] = (
    Stage("train", "train", (), "medseq train CONFIG"),
    Stage("evaluate", "evaluate", (), "medseq evaluate BUNDLE DATA"),
    Stage("predict", "predict (file)", (), "medseq predict BUNDLE DATA"),
    Stage("report", "report", (), "medseq report BUNDLE DATA"),
    Stage("explain", "explain", (), "medseq explain BUNDLE DATA --subject ID"),
    Stage("onnx", "ONNX export", (), "medseq export BUNDLE --format onnx"),
    Stage("rest", "REST predict", ("request",), "POST /v1/predict"),
    Stage("streaming", "streaming", ("streaming",), STREAMING_ROUTES),
    Stage("federated", "federated", ("partitions", "federated_fit"), "medseq federate"),
)
#: What each part a stage needs does, for the reason of a cell whose spec lacks it.
PART_ROLES = {
    "request": "the JSON body of a prediction request",
    "streaming": "how to advance one subject an observation at a time",
    "partitions": "how to split the data into sites",
    "federated_fit": "how to fit the featurizer from per-site statistics",
}
STAGE_KEYS = tuple(stage.key for stage in STAGES)


def _stage(key: str) -> Stage:
    for stage in STAGES:
        if stage.key == key:
            return stage
    raise ValueError(f"unknown stage {key!r}; stages: {list(STAGE_KEYS)}")


def cell(spec: DatasetSpec, key: str) -> Cell:
    """The cell of ``spec`` for stage ``key``: the spec's sentence first, then the part.

    The spec's ``unsupported`` sentence for the stage (or for the part it needs) wins over
    everything: a stage that makes no sense for the dataset says so even if a part is set.
    A stage needing a part is supported when the spec has it, and otherwise names it.
    """
    stage = _stage(key)
    why = spec.unsupported.get(stage.key) or next(
        (spec.unsupported[part] for part in stage.parts if part in spec.unsupported), None
    )
    if why:
        return Cell(False, why)
    for part in stage.parts:
        if not getattr(spec, part, None):
            return Cell(False, f"its spec has no `{part}` part ({PART_ROLES[part]})")
    return Cell(True)


#: Stages that a second spec part can serve when the stage's own part is missing: REST by
#: the FHIR Bundle part (a dataset whose request *is* the patient's FHIR record has only
#: that), streaming by ``signal_streaming`` (a signal sample by sample on ``/v1/streams``).
ALTERNATIVE_PARTS = {"rest": "fhir", "streaming": "signal_streaming"}


def _cell_of(spec: DatasetSpec, key: str) -> Cell:
    """:func:`cell`, or supported through the stage's alternative part when the spec has
    it and rules out neither the stage nor that part."""
    found = cell(spec, key)
    other = ALTERNATIVE_PARTS.get(key)
    if found.supported or other is None or key in spec.unsupported:
        return found
    if getattr(spec, other, None) and other not in spec.unsupported:
        return Cell(True)
    return found


def matrix(names: Iterable[str] | None = None) -> dict[str, dict[str, Cell]]:
    """``{dataset: {stage key: Cell}}`` for the registered datasets (all by default)."""
    chosen = list(DATASETS) if names is None else list(names)
    return {
        name: {s.key: _cell_of(get_dataset(name), s.key) for s in STAGES}
        for name in chosen
    }


def require_stage(spec: DatasetSpec, key: str) -> None:
    """Refuse, with the matrix's sentence, a stage the dataset does not support.

    Raises
    ------
    StageUnsupported
        Naming the command, the dataset and the reason.
    """
    found = _cell_of(spec, key)
    if not found.supported:
        stage = _stage(key)
        raise StageUnsupported(
            f"{stage.command} is not available for dataset {spec.name!r}: {found.reason}"
        )


def require_bundle_stage(bundle_dir: str | Path, key: str) -> None:
    """:func:`require_stage` for the dataset a saved bundle records (read from its JSON,
    without loading weights); a path that is not a bundle is left to the loader."""
    from medseq.bundle import MANIFEST_FILE, _origin

    manifest = Path(bundle_dir) / MANIFEST_FILE
    if manifest.is_file():
        dataset, _ = _origin(
            json.loads(manifest.read_text()).get("provenance", {}), str(bundle_dir)
        )
        require_stage(get_dataset(dataset), key)


def _numbered(table: dict[str, dict[str, Cell]]) -> tuple[dict[str, int], list[str]]:
    """Each distinct reason numbered once, in table order."""
    numbers: dict[str, int] = {}
    for row in table.values():
        for c in row.values():
            if not c.supported and c.reason not in numbers:
                numbers[c.reason] = len(numbers) + 1
    return numbers, list(numbers)


def to_markdown(table: dict[str, dict[str, Cell]]) -> str:
    """The matrix as a markdown table (✓, or ✗ with a note number) and its numbered notes."""
    numbers, reasons = _numbered(table)
    header = "| dataset | " + " | ".join(s.title for s in STAGES) + " |"
    lines = [header, "|---|" + "---|" * len(STAGES)]
    for name, row in table.items():
        marks = ["✓" if c.supported else f"✗ ({numbers[c.reason]})" for c in row.values()]
        lines.append(f"| {name} | " + " | ".join(marks) + " |")
    lines.append("")
    lines += [f"{k}. {reason}" for k, reason in enumerate(reasons, start=1)]
    return "\n".join(lines) + "\n"


def to_text(table: dict[str, dict[str, Cell]]) -> str:
    """The matrix as aligned plain text with the reasons listed after it."""
    numbers, reasons = _numbered(table)
    titles = ["dataset", *(s.title for s in STAGES)]
    rows = [
        [name, *("yes" if c.supported else f"no ({numbers[c.reason]})" for c in row.values())]
        for name, row in table.items()
    ]
    widths = [max(len(r[i]) for r in [titles, *rows]) for i in range(len(titles))]
    lines = ["  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)) for r in [titles, *rows]]
    lines.append("")
    lines += [f"({k}) {reason}" for k, reason in enumerate(reasons, start=1)]
    return "\n".join(line.rstrip() for line in lines) + "\n"


def readme_section(text: str) -> str:
    """The markdown between the README's capability markers; an error when they are absent."""
    pattern = re.compile(re.escape(README_START) + r"\n(.*?)" + re.escape(README_END), re.S)
    found = pattern.search(text)
    if found is None:
        raise ValueError(f"no {README_START} ... {README_END} block in the README")
    return found.group(1)


def write_readme(path: str | Path, markdown: str) -> bool:
    """Put ``markdown`` between the markers of the README at ``path``; True if it changed."""
    path = Path(path)
    text = path.read_text()
    old = readme_section(text)
    if old == markdown:
        return False
    start = text.index(README_START) + len(README_START) + 1
    path.write_text(text[:start] + markdown + text[start + len(old) :])
    return True


FORMATS: dict[str, Callable[[dict[str, dict[str, Cell]]], str]] = {
    "markdown": to_markdown,
    "text": to_text,
}


def show(fmt: str = "text", readme: str | Path | None = None) -> str:
    """What ``medseq capabilities`` prints: the table in ``fmt``, or, with ``readme``, the
    markdown table written into that README and a line saying whether it changed."""
    if fmt not in FORMATS:
        raise ValueError(f"--format must be one of {sorted(FORMATS)}, got {fmt!r}")
    table = matrix()
    if readme is not None:
        changed = write_readme(readme, to_markdown(table))
        return f"{readme}: capability table {'updated' if changed else 'unchanged'}\n"
    return FORMATS[fmt](table)
