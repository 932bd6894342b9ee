"""The HTML report of an attention-pooling GRU trained on real PhysioNet 2012 data.

Renders it in headless Chromium (Debian's package, driven over the DevTools protocol),
checks there is no console error and every figure is decoded, takes a screenshot, and
checks that the numbers in the page are the ones stored in the bundle and the ones
medseq's evaluation computes independently.
"""

from __future__ import annotations

import base64
import html.parser
import json
import os
import shutil
import signal
import struct
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest

from medseq.bundle import MODEL_CARD_FILE, load_bundle, save_bundle
from medseq.evaluation import fit_calibration, metrics_with_ci
from medseq.experiment.data import labels_for, read_set
from medseq.report import ReportConfig, build_report
from medseq.report.html import fmt
from small_runs import train_small

N_BOOT = 200
FIGURES = {
    "roc_pr",
    "calibration",
    "confusion",
    "decision_curve",
    "subgroups",
    "missingness",
    "importance",
    "example_integrated_gradients",
    "example_occlusion",
    "example_attention",
    "risk_coverage",
}


@pytest.fixture(scope="module")
def attention_bundle(tmp_path_factory, physionet2012_dir) -> Path:
    """GRU with attention pooling, calibrated on 600 set-A stays it never saw."""
    model = {"cell": "gru", "hidden_size": 16, "pooling": "attention", "input_delta": True}
    path = train_small(tmp_path_factory.mktemp("attention_bundle"), model)
    bundle = load_bundle(path)
    data = read_set("physionet2012", physionet2012_dir / "set-a.tar.gz")
    labels = labels_for("mortality", data).sort_index().iloc[1000:1600]  # after the 1000 used
    risk = bundle.predict(data, labels.index.to_numpy())
    bundle.calibration = fit_calibration(labels.to_numpy(), risk) | {"fitted_on": "set-a 1000:1600"}
    save_bundle(bundle, path)
    return path


@pytest.fixture(scope="module")
def report(attention_bundle, physionet2012_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("report") / "report.html"
    config = ReportConfig(n_boot=N_BOOT, max_subjects=1000, n_explain=120)
    return build_report(
        attention_bundle,
        physionet2012_dir / "set-b.tar.gz",
        external=physionet2012_dir / "set-a.tar.gz",
        output=out,
        config=config,
    )


class _Cells(html.parser.HTMLParser):
    """Metric cells (``data-metric``) with their attributes and displayed text."""

    def __init__(self) -> None:
        super().__init__()
        self.cells: list[dict] = []
        self.images: list[dict] = []
        self._open: dict | None = None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "td" and "data-metric" in attrs:
            self._open = attrs | {"text": ""}
        if tag == "img":
            self.images.append(attrs)
        if tag == "span" and self._open is not None:
            self.cells.append(self._open)
            self._open = None

    def handle_data(self, data):
        if self._open is not None:
            self._open["text"] += data


def parse_report_cells(report) -> _Cells:
    """Metric cells and images of a built report (shared with the regression test)."""
    parser = _Cells()
    parser.feed(report.html_path.read_text(encoding="utf-8"))
    return parser


def test_numbers_in_the_page_are_the_bundles(report, attention_bundle, physionet2012_dir):
    card = load_bundle(attention_bundle).model_card
    cells = [
        c for c in parse_report_cells(report).cells if c["data-set"] in ("internal", "external")
    ]
    assert len(cells) == 2 * 10
    for cell in cells:
        stored = card["evaluation"][cell["data-set"]]["metrics"][cell["data-metric"]]
        assert [float(cell[k]) for k in ("data-point", "data-lo", "data-hi")] == stored
        assert cell["text"].strip() == fmt(stored[0])
    # and they are medseq's evaluation of the bundle on the same stays, recomputed here
    bundle = load_bundle(attention_bundle)
    data = read_set("physionet2012", physionet2012_dir / "set-b.tar.gz")
    labels = labels_for("mortality", data).sort_index().iloc[:1000]
    risk = bundle.predict(data, labels.index.to_numpy())
    expected = metrics_with_ci(
        labels.to_numpy(), risk, threshold=bundle.threshold, n_boot=N_BOOT, random_state=0
    )
    for name, triple in expected.items():
        assert card["evaluation"]["internal"]["metrics"][name] == pytest.approx(list(triple))


def test_report_is_self_contained_with_every_figure(report):
    text = report.html_path.read_text(encoding="utf-8")
    assert "<script" not in text and "http://" not in text and "https://" not in text
    images = parse_report_cells(report).images
    assert {img["data-figure"] for img in images} == FIGURES
    assert all(img["src"].startswith("data:image/png;base64,") for img in images)
    assert set(report.figure_paths) == FIGURES
    for path in report.figure_paths.values():
        png = path.read_bytes()
        width, height = struct.unpack(">II", png[16:24])
        assert path.parent == report.html_path.parent / "report_figures"
        assert 450 <= width <= 1400 and 250 <= height <= 1400, (path.name, width, height)


def test_report_sections_subgroups_external_and_card(report, attention_bundle):
    text = report.html_path.read_text(encoding="utf-8")
    for group in ("80+", "female", "male", "Medical", "Surgical", "Coronary Care"):
        assert f"<td>{group}</td>" in text
    assert "is the file the model was trained and selected on" in text  # set A as external
    assert 'data-drift="ece_raw"' in text
    assert "temperature</strong> scaling" in text
    bundle = load_bundle(attention_bundle)  # the hash still verifies after the update
    assert (attention_bundle / MODEL_CARD_FILE).read_text() == bundle.model_card_markdown
    assert bundle.model_card["subgroups"] and bundle.model_card["limitations"]
    faithfulness = bundle.model_card["explanations"]["faithfulness"]
    assert faithfulness["mean_change_top"] > faithfulness["mean_change_random"]
    cal = report.sets["internal"]["calibration"]
    assert {"ece_raw", "ece_calibrated", "slope_raw", "slope_calibrated"} <= set(cal)
    assert json.loads(json.dumps(bundle.model_card)) == bundle.model_card


def test_report_renders_in_chromium_without_errors(report, tmp_path):
    shot = tmp_path / "report.png"
    page = render_in_chromium(report.html_path, shot)
    assert page["errors"] == [], page["errors"]
    figures = {img["figure"]: img for img in page["images"]}
    assert set(figures) == FIGURES
    for name, img in figures.items():
        assert img["complete"] and img["naturalWidth"] > 400, name
        assert img["width"] > 300, f"{name} is drawn {img['width']} px wide"
    png = shot.read_bytes()
    width, height = struct.unpack(">II", png[16:24])
    assert width >= 600 and height > 3000  # the whole page, not the first screen
    assert len(png) > 100_000
    kept = Path(report.html_path).with_name("screenshot.png")
    shutil.copy(shot, kept)  # beside the report, for a person to look at


def test_chromium_check_catches_a_broken_page(tmp_path):
    page_path = tmp_path / "broken.html"
    page_path.write_text(
        '<html><body><img src="missing.png" data-figure="x">'
        '<script>console.error("boom"); undefinedFunction();</script></body></html>'
    )
    page = render_in_chromium(page_path, tmp_path / "broken.png")
    joined = " ".join(page["errors"])
    assert "boom" in joined and "undefinedFunction" in joined
    assert "missing.png" in joined or any("ERR_FILE_NOT_FOUND" in e for e in page["errors"])
    assert not page["images"][0]["complete"] or page["images"][0]["naturalWidth"] == 0


def test_subgroup_cells_hold_their_own_ci(report):
    cells = [c for c in parse_report_cells(report).cells if c["data-set"].startswith("subgroup:")]
    table = report.subgroups.dropna(subset=["value"])
    assert len(cells) == len(table)
    for cell, row in zip(cells, table.itertuples(), strict=True):
        assert float(cell["data-point"]) == row.value
        assert float(cell["data-lo"]) <= row.value <= float(cell["data-hi"])
    assert np.isfinite(table["value"]).all()


# --- headless Chromium over the DevTools protocol -------------------------------------------

CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--remote-debugging-port=0",
    "--window-size=1280,900",
    "--hide-scrollbars",
]
IMAGES_JS = (
    "JSON.stringify(Array.from(document.images).map(i => ({figure: i.dataset.figure, "
    "complete: i.complete, naturalWidth: i.naturalWidth, width: i.width})))"
)


class _DevTools:
    """Minimal synchronous CDP client over one flattened page session."""

    def __init__(self, socket) -> None:
        self.socket = socket
        self.next_id = 0
        self.events: list[dict] = []
        self.session: str | None = None

    def call(self, method: str, params: dict | None = None, timeout_s: float = 60.0) -> dict:
        self.next_id += 1
        message = {"id": self.next_id, "method": method, "params": params or {}}
        if self.session and not method.startswith("Target."):
            message["sessionId"] = self.session
        self.socket.send(json.dumps(message))
        deadline = time.monotonic() + timeout_s
        while True:
            reply = json.loads(self.socket.recv(timeout=max(deadline - time.monotonic(), 0.1)))
            if reply.get("id") == self.next_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply["result"]
            self.events.append(reply)

    def wait_for(self, method: str, timeout_s: float = 60.0) -> None:
        deadline = time.monotonic() + timeout_s
        while not any(e.get("method") == method for e in self.events):
            self.events.append(json.loads(self.socket.recv(timeout=deadline - time.monotonic())))

    def drain(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            try:
                self.events.append(json.loads(self.socket.recv(timeout=left)))
            except TimeoutError:
                return


def _console_errors(events: list[dict]) -> list[str]:
    errors = []
    for e in events:
        method, params = e.get("method"), e.get("params", {})
        if method == "Runtime.consoleAPICalled" and params["type"] in ("error", "assert"):
            errors.append(
                " ".join(str(a.get("value", a.get("description"))) for a in params["args"])
            )
        elif method == "Runtime.exceptionThrown":
            details = params["exceptionDetails"]
            errors.append(details.get("exception", {}).get("description", details["text"]))
        elif method == "Log.entryAdded" and params["entry"]["level"] == "error":
            entry = params["entry"]
            errors.append(f"{entry['text']} {entry.get('url', '')}")
    return errors


def _launch(profile: str) -> tuple[subprocess.Popen, str]:
    exe = shutil.which("chromium")
    if exe is None:
        pytest.fail("chromium is not installed: run scripts/install_chromium.sh (make test does)")
    proc = subprocess.Popen(
        [exe, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "about:blank"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # its helpers (zygote, renderers) share one process group
    )
    port_file = Path(profile) / "DevToolsActivePort"
    deadline = time.monotonic() + 60
    while not (port_file.exists() and len(port_file.read_text().splitlines()) == 2):
        if time.monotonic() > deadline or proc.poll() is not None:
            _stop(proc)
            pytest.fail("chromium did not open its DevTools port within 60 s")
        time.sleep(0.1)
    port, path = port_file.read_text().splitlines()
    return proc, f"ws://127.0.0.1:{port}{path}"


def _stop(proc: subprocess.Popen) -> None:
    """End chromium and every helper it forked.

    Terminating only the browser process leaves helpers that keep writing to the profile
    for a moment, which made the profile's removal fail now and then.
    """
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            continue
        time.sleep(0.2)  # helpers exit after the browser; give them the moment


def _visit(tools: _DevTools, page: Path, screenshot: Path) -> list:
    target = tools.call("Target.createTarget", {"url": "about:blank"})["targetId"]
    attach = {"targetId": target, "flatten": True}
    tools.session = tools.call("Target.attachToTarget", attach)["sessionId"]
    for domain in ("Page", "Runtime", "Log"):
        tools.call(f"{domain}.enable")
    tools.call("Page.navigate", {"url": page.resolve().as_uri()})
    tools.wait_for("Page.loadEventFired")
    tools.drain(0.5)
    images = tools.call("Runtime.evaluate", {"expression": IMAGES_JS})["result"]["value"]
    size = tools.call("Page.getLayoutMetrics")["cssContentSize"]
    clip = {"x": 0, "y": 0, "width": size["width"], "height": min(size["height"], 16000)}
    params = {"format": "png", "captureBeyondViewport": True, "clip": clip | {"scale": 1}}
    shot = tools.call("Page.captureScreenshot", params)
    screenshot.write_bytes(base64.b64decode(shot["data"]))
    return json.loads(images)


def render_in_chromium(page: Path, screenshot: Path) -> dict:
    """Load ``page``; return console errors and image states; write a full-page screenshot."""
    from websockets.sync.client import connect

    # A profile file a late helper writes after the kill is not worth failing the test over.
    with tempfile.TemporaryDirectory(ignore_cleanup_errors=True) as profile:
        proc, url = _launch(profile)
        try:
            with connect(url, max_size=None, open_timeout=30) as socket:
                tools = _DevTools(socket)
                images = _visit(tools, page, screenshot)
        finally:
            _stop(proc)
    return {"errors": _console_errors(tools.events), "images": images}


def test_report_checks_conformal_coverage_by_subgroup(report):
    html = report.html_path.read_text()
    assert 'id="uncertainty-table"' in html
    internal = report.uncertainty["internal"]
    point, lo, hi = internal["marginal"]["coverage"]
    assert lo <= point <= hi and 0.85 <= point <= 0.95
    groups = {(g["attribute"], g["group"]) for g in internal["mondrian"]["subgroups"]}
    assert len(groups) >= 4  # age bands, sex, ICU types of the spec
    assert sum(g["n"] for g in internal["marginal"]["subgroups"] if g["attribute"] == "sex") <= 1000
    curve = internal["risk_coverage"]
    assert curve[-1]["answer_rate"] == 1.0 and curve[0]["error"] <= curve[-1]["error"]
    assert "external" in report.uncertainty
