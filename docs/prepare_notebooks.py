"""The notebooks of the docs site: copy them out of nbs/, and tidy the executed copies for reading.

    python docs/prepare_notebooks.py copy NBS DEST   # NBS/[0-9]*.ipynb -> DEST (emptied first); nbs/pipeline/ etc. are not copied
    python docs/prepare_notebooks.py tidy DEST       # after nbdev-test --save: hide nbdev's bookkeeping directives

`make docs` runs `copy`, then `nbdev-test DEST --save` (executes the copies, skipping cells flagged
`#| slow`, `#| gpu`, `#| notest`, and writes the outputs back), then `tidy`, then Sphinx.
"""
import json
import re
import shutil
import sys
from pathlib import Path

# Directives that only tell nbdev where code goes; a reader does not need them. Skip flags (slow, gpu,
# notest) stay visible: they say why a cell has no output.
BOOKKEEPING = re.compile(r"^\s*#\|\s*(export|exports|exporti|default_exp|hide|hide_line|eval:\s*false)\b.*$")


def copy(nbs: Path, dest: Path) -> list[Path]:
    "Copy the numbered notebooks (top level of `nbs` only) into an emptied `dest`."
    if dest.exists(): shutil.rmtree(dest)
    dest.mkdir(parents=True)
    files = sorted(nbs.glob("[0-9]*.ipynb"))
    if not files: sys.exit(f"docs: no numbered notebooks in {nbs}")
    for f in files: shutil.copy2(f, dest / f.name)
    print(f"docs: copied {len(files)} notebooks to {dest}: {' '.join(f.stem for f in files)}")
    return files


def tidy_cell(cell: dict) -> dict | None:
    "The cell as the site shows it, or None to leave it out."
    if cell["cell_type"] != "code": return cell
    lines = "".join(cell["source"]).splitlines()
    directives = [l for l in lines if l.lstrip().startswith("#|")]
    if any(re.match(r"^\s*#\|\s*hide\s*$", l) for l in directives): return None
    kept = [l for l in lines if not BOOKKEEPING.match(l)]
    while kept and not kept[0].strip(): kept.pop(0)
    if not kept and not cell.get("outputs"): return None
    cell["source"] = "\n".join(kept)
    return cell


def tidy(dest: Path):
    "Hide nbdev's bookkeeping directives and `#| hide` cells in every executed notebook of `dest`."
    files = sorted(dest.glob("*.ipynb"))
    for f in files:
        nb = json.loads(f.read_text(encoding="utf-8"))
        code = [c for c in nb["cells"] if c["cell_type"] == "code"]
        if code and all(c.get("execution_count") is None for c in code):
            sys.exit(f"docs: {f.name} was not executed (run nbdev-test --save on {dest} first)")
        nb["cells"] = [c for c in (tidy_cell(c) for c in nb["cells"]) if c is not None]
        f.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"docs: tidied {len(files)} executed notebooks in {dest}")


if __name__ == "__main__":
    match sys.argv[1:]:
        case ["copy", nbs, dest]: copy(Path(nbs), Path(dest))
        case ["tidy", dest]: tidy(Path(dest))
        case _: sys.exit(__doc__)
