"""The monitoring modules run on an edge install: importing them loads no torch."""

from __future__ import annotations

import subprocess
import sys


def test_monitoring_modules_do_not_import_torch_or_pandas():
    code = (
        "import sys\n"
        "import medseq.monitoring.detector, medseq.monitoring.replay, medseq.monitoring.records\n"
        "heavy = sorted({'torch', 'pandas', 'wfdb', 'fastapi'} & set(sys.modules))\n"
        "print(','.join(heavy))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == ""
