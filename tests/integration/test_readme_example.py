"""The README's Python example runs as printed (with fewer epochs, to stay quick)."""

import re
from pathlib import Path

README = Path(__file__).resolve().parents[2] / "README.md"


def _python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.DOTALL)


def test_readme_python_example_runs(physionet2012_dir, monkeypatch, capsys):
    blocks = _python_blocks()
    assert blocks, "README has no python example"
    code = blocks[0].replace("epochs=20", "epochs=1")
    code = code.replace('"../shared/data/physionet2012/', f'"{physionet2012_dir}/')
    namespace: dict = {}
    exec(compile(code, str(README), "exec"), namespace)
    assert namespace["p_val"].shape == (800,)  # 20 % of set A
    printed = capsys.readouterr().out
    assert "auroc" in printed
    point, lo, hi = re.findall(r"auroc': CI\(point=([\d.]+), lo=([\d.]+), hi=([\d.]+)", printed)[0]
    assert float(lo) <= float(point) <= float(hi)
    assert float(point) > 0.6
