"Reports outside a notebook: a light import, and figures drawn by a headless process with no backend chosen."
import os
import subprocess
import sys

SCRIPT = """
import sys
import creason.reports as r
assert "matplotlib" not in sys.modules and "torch" not in sys.modules, "creason.reports must import plotting lazily"
import pandas as pd
from pathlib import Path
out = Path(sys.argv[1])
png = r.training_curves_figure(pd.DataFrame({"step": [1, 2], "reward": [0.1, 0.2]}), out / "figures" / "train.png")
assert png.read_bytes()[:4] == b"\\x89PNG"
r.save_table(pd.DataFrame({"group": ["a"], "questions": [3], "accuracy": [0.5]}), out / "tables", "t")
assert "0.500" not in (out / "tables" / "t.md").read_text()
print(r.write_index(out.parent))
"""


def test_headless_figures_and_light_import(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("MPLBACKEND", "DISPLAY", "WAYLAND_DISPLAY")}
    run = tmp_path / "reports" / "run1"
    (run).mkdir(parents=True)
    (run / "stages.json").write_text("{}")
    result = subprocess.run([sys.executable, "-c", SCRIPT, str(run)], capture_output=True, text=True, env=env, timeout=120)
    assert result.returncode == 0, result.stderr
    page = (tmp_path / "reports" / "index.html").read_text()
    assert 'href="run1/tables/t.md"' in page and 'src="run1/figures/train.png"' in page
