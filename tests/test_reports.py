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


def test_short_numeric_record_ids_are_found_where_ids_travel(tmp_path):
    "A public registry's ids are small numbers: searched in question ids and record_id fields, not as bare numbers."
    from creason.reports import shareable_problems
    from creason.sources import load_source
    icu = load_source("icu")
    record = str(icu.ids.iloc[0])
    (tmp_path / "table.md").write_text(f"| target | questions |\n|---|---:|\n| age | {record} |\n")
    assert shareable_problems(tmp_path, icu) == []  # a count that happens to equal an id is not a leak
    (tmp_path / "page.html").write_text(f'<td>denoise/{record}/age</td><td>{{"record_id": "{record}"}}</td>')
    found = shareable_problems(tmp_path, icu)
    assert [p.split(":")[0] for p in found] == ["page.html", "page.html"], found
