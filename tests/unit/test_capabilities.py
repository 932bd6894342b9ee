"""The capability matrix is computed from the registry, says why wherever a stage is not
supported, matches the README's table, and a command the matrix rules out refuses with the
matrix's sentence."""

from __future__ import annotations

import json
import re
import shutil
from dataclasses import replace
from pathlib import Path

import pytest
from typer.testing import CliRunner

from medseq.capabilities import (
    README_END,
    README_START,
    STAGE_KEYS,
    STREAMING_ROUTES,
    cell,
    matrix,
    readme_section,
    require_bundle_stage,
    require_stage,
    to_markdown,
    write_readme,
)
from medseq.cli import app
from medseq.datasets import DATASETS, StageUnsupported, get_dataset

README = Path(__file__).resolve().parents[2] / "README.md"
REGENERATE = "medseq capabilities --write-readme README.md"


def test_readme_table_is_the_generated_one():
    written = readme_section(README.read_text())
    assert written == to_markdown(matrix()), f"the README table is stale: run `{REGENERATE}`"


def test_every_dataset_and_stage_has_a_cell_and_every_gap_a_reason():
    table = matrix()
    assert list(table) == list(DATASETS)
    for name, row in table.items():
        assert tuple(row) == STAGE_KEYS
        for stage, c in row.items():
            assert c.supported or len(c.reason) > 20, (name, stage)
        assert all(row[k].supported for k in ("train", "evaluate", "predict", "report"))


def test_a_cell_asks_the_spec_sentence_first_then_the_part():
    spec = replace(get_dataset("tox21"), request=None)
    assert not cell(spec, "rest").supported
    assert "`request`" in cell(spec, "rest").reason
    served = replace(spec, request=object())
    assert cell(served, "rest").supported
    streamed = replace(spec, streaming=object())  # the spec's sentence still rules it out
    assert cell(streamed, "streaming").reason.startswith("a molecule is one SMILES string")
    with pytest.raises(StageUnsupported, match=re.escape(f"{STREAMING_ROUTES} is not available")):
        require_stage(streamed, "streaming")
    with pytest.raises(ValueError, match="unknown stage 'stream'"):
        cell(spec, "stream")


def test_a_signal_streaming_part_makes_the_streaming_cell():
    """A beat bundle streams sample by sample on /v1/streams (its spec's signal_streaming),
    so its streaming cell is supported; without that part it names the missing part."""
    mitbih = get_dataset("mitbih")
    assert mitbih.streaming is None and mitbih.signal_streaming is not None
    assert matrix(["mitbih"])["mitbih"]["streaming"].supported
    bare = replace(mitbih, signal_streaming=None)
    monkey = {"mitbih": bare}
    import medseq.capabilities as capabilities

    original = capabilities.get_dataset
    try:
        capabilities.get_dataset = lambda name: monkey.get(name) or original(name)
        gone = capabilities.matrix(["mitbih"])["mitbih"]["streaming"]
    finally:
        capabilities.get_dataset = original
    assert not gone.supported and "`streaming`" in gone.reason


def test_explain_refuses_a_bundle_of_a_dataset_without_a_method(tmp_path, monkeypatch):
    # Every registered dataset has an explanation now: rule one out to check the refusal.
    sentence = "explanations of this dataset's models are ruled out here for the test"
    ruled_out = replace(get_dataset("cinc2017"), unsupported={"explain": sentence})
    monkeypatch.setattr("medseq.capabilities.get_dataset", lambda name: ruled_out)
    (tmp_path / "medseq.json").write_text(
        json.dumps({"provenance": {"dataset": "cinc2017", "task": "rhythm"}})
    )
    with pytest.raises(StageUnsupported, match="ruled out here"):
        require_bundle_stage(tmp_path, "explain")
    result = CliRunner().invoke(
        app, ["explain", str(tmp_path), "--data", str(tmp_path), "--subject", "1"]
    )
    assert result.exit_code == 2
    assert sentence in " ".join(result.output.split())


def test_every_dataset_has_an_explanation():
    assert all(row["explain"].supported for row in matrix().values())


def test_cli_prints_the_table_and_writes_the_readme(tmp_path):
    result = CliRunner().invoke(app, ["capabilities", "--format", "markdown"])
    assert result.exit_code == 0, result.output
    assert result.output == to_markdown(matrix())
    text = CliRunner().invoke(app, ["capabilities"]).output
    assert text.splitlines()[0].split()[:3] == ["dataset", "train", "evaluate"]
    copy = tmp_path / "README.md"
    shutil.copy(README, copy)
    stale = copy.read_text().replace("| tox21 |", "| tox21 (old) |")
    copy.write_text(stale)
    result = CliRunner().invoke(app, ["capabilities", "--write-readme", str(copy)])
    assert "updated" in result.output
    assert copy.read_text() == README.read_text()
    assert not write_readme(copy, to_markdown(matrix()))
    copy.write_text("# no markers\n")
    with pytest.raises(ValueError, match=README_START):
        write_readme(copy, "x")
    assert README_END in README.read_text()


def _gaps(stage: str) -> list[tuple[str, str]]:
    """``(dataset, reason)`` of every cell of ``stage`` that the matrix marks unsupported."""
    return [(name, row[stage].reason) for name, row in matrix().items()
            if not row[stage].supported]  # fmt: skip


@pytest.mark.parametrize(("name", "reason"), _gaps("streaming"))
def test_every_streaming_gap_is_refused_by_both_stream_routes_with_the_matrix_sentence(
    name, reason
):
    """What ``/v1/patients/...`` and ``/v1/streams/...`` answer (404) for a bundle of a
    dataset whose streaming cell is a gap: the service's refusals, computed from the
    bundle's provenance at start-up, each carry the matrix's sentence."""
    from medseq.serving.api import served_dataset
    from medseq.serving.signal_routes import signal_part

    spec = get_dataset(name)
    task = next(iter(spec.tasks), "")
    served = served_dataset({"provenance": {"dataset": name, "task": task}}, Path("bundle"))
    part, signal_refusal = signal_part(spec)
    assert served.streaming is None and part is None
    for refusal in (served.refusal, signal_refusal):
        assert refusal is not None and name in refusal
        assert reason in refusal, (refusal, reason)


@pytest.mark.parametrize(("name", "reason"), _gaps("federated"))
def test_every_federated_gap_is_refused_by_medseq_federate_with_the_matrix_sentence(
    name, reason, tmp_path
):
    spec = get_dataset(name)
    task = next(t for t, kind in spec.tasks.items() if kind in ("binary", "multiclass"))
    config = tmp_path / "fed.toml"
    config.write_text(
        f'[data]\ndataset = "{name}"\ntask = "{task}"\ntrain = "{name}"\n'
        '[federated]\npartition = "dirichlet"\n'
    )
    result = CliRunner().invoke(app, ["federate", "simulate", str(config)])
    assert result.exit_code == 2, result.output
    said = " ".join(result.output.split())
    assert f"medseq federate is not available for dataset {name!r}: {reason}" in said, said
