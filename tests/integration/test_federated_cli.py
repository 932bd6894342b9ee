"""`medseq federate`: help, bad input, and a server with two site processes on loopback."""

from __future__ import annotations

import socket
import subprocess
import sys
import time

import pytest
from typer.testing import CliRunner

from medseq.cli import app

pytest.importorskip("flwr", reason="medseq[federated] is not installed")

runner = CliRunner()


def test_federate_help_lists_the_three_ways_to_run():
    result = runner.invoke(app, ["federate", "--help"])
    assert result.exit_code == 0
    for command in ("simulate", "server", "client"):
        assert command in result.output
    result = runner.invoke(app, ["federate", "client", "--help"])
    assert "--site" in result.output and "--address" in result.output


def test_federate_bad_config_is_one_clear_line(tmp_path):
    missing = runner.invoke(app, ["federate", str(tmp_path / "nope.toml")])
    assert missing.exit_code == 2
    assert "nope.toml does not exist" in missing.output
    bad = tmp_path / "bad.toml"
    bad.write_text('[federated]\nstrategy = "fedsgd"\n')
    result = runner.invoke(app, ["federate", "simulate", str(bad)])
    assert result.exit_code == 2
    assert "strategy must be one of" in result.output and "bad.toml" in result.output


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_server_and_two_site_processes_on_loopback(physionet2012_dir, tmp_path):
    config = tmp_path / "fed.toml"
    config.write_text(
        f"""
name = "loopback"
output_dir = "{tmp_path / "run"}"
[data]
train = "{physionet2012_dir / "set-a.tar.gz"}"
[features]
static_summary = true
[model]
hidden_size = 8
pooling = "mean"
[train]
lr = 1e-2
num_threads = 1
[federated]
partition = "iid"
n_sites = 2
rounds = 2
max_subjects_per_site = 80
min_fit_clients = 1
"""
    )
    address = f"127.0.0.1:{_free_port()}"
    base = [sys.executable, "-m", "medseq.cli", "federate"]
    server = subprocess.Popen(
        [*base, "server", str(config), "--address", address, "--sites", "2"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    time.sleep(2)
    clients = [
        subprocess.Popen(
            [*base, "client", str(config), "--site", str(k), "--address", address],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for k in (0, 1)
    ]
    try:
        out, _ = server.communicate(timeout=240)
        client_out = [c.communicate(timeout=60)[0] for c in clients]
    finally:
        for proc in (server, *clients):
            if proc.poll() is None:
                proc.kill()
    assert server.returncode == 0, out[-3000:]
    assert "round   2: 2 sites, 0 failed" in out, out[-3000:]
    assert "best round" in out
    assert all(c.returncode == 0 for c in clients), client_out[0][-2000:]
    assert (tmp_path / "run" / "results.json").exists()
