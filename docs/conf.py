"""Sphinx configuration of the creason docs site: the README, the numbered notebooks with outputs, the API reference.

Build it with `make docs`, which first copies nbs/[0-9]*.ipynb to docs/notebooks/ and executes the copies with
nbdev-test (so cells flagged `#| slow`, `#| gpu`, `#| notest` are skipped, as in `make test`). Sphinx itself
never executes a notebook. The site is fully offline: no fonts, scripts or styles from other hosts.
"""
import importlib
import pkgutil
import re
import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parent
ROOT = DOCS.parent
sys.path.insert(0, str(ROOT))

project = "creason"
author = "creason maintainers"
copyright = "2026, creason maintainers"
extensions = ["myst_nb", "sphinx.ext.autodoc", "sphinx.ext.napoleon", "sphinx.ext.viewcode"]
exclude_patterns = ["_build", "**.ipynb_checkpoints", "Thumbs.db", ".DS_Store"]
myst_enable_extensions = ["colon_fence", "dollarmath"]
myst_heading_anchors = 3

# The notebooks arrive executed (by nbdev-test, which honours the skip flags); never run them again here.
nb_execution_mode = "off"
nb_merge_streams = True
# No widget JavaScript from a CDN (no notebook here uses ipywidgets).
nb_ipywidgets_js = {}
# Offline: no page has math today. Should one ever, MathJax must come from this site, not the default CDN:
# a relative path is under _static/, and docs/check_site.py fails until a copy is put there.
mathjax_path = "mathjax/tex-chtml.js"

autodoc_member_order = "bysource"
autodoc_default_options = {"members": True, "undoc-members": False}
autodoc_typehints = "description"

html_theme = "pydata_sphinx_theme"
html_title = "creason"
html_theme_options = {
    "navigation_with_keys": False,
    "show_toc_level": 2,
    "use_edit_page_button": False,
    "icon_links": [],  # the icon links would load nothing remote, but keep the header plain
    "footer_start": ["copyright"],
    "footer_end": [],  # "Built with ..." links point to other sites
}
# The theme's colour-mode script reports an error in the console unless a default mode is set.
html_context = {"default_mode": "auto"}
html_static_path = []
html_last_updated_fmt = None


# --- API reference: one page per module of the creason package, in notebook order --------------------------------

def _source_notebook(module_file: Path) -> str | None:
    "The notebook a module is exported from (nbdev writes it in the module's header), e.g. '00_core'."
    m = re.search(r"File to edit: \.\./nbs/(.+?)\.ipynb", module_file.read_text(encoding="utf-8")[:2000])
    return m.group(1) if m else None


def _write_if_changed(path: Path, text: str):
    "Write only when the text differs, so Sphinx's incremental build does not re-read unchanged pages."
    if not path.exists() or path.read_text(encoding="utf-8") != text: path.write_text(text, encoding="utf-8")


def write_api_pages():
    "docs/api/index.md and docs/api/creason.MODULE.md for each public module (generated, git-ignored)."
    import creason
    api = DOCS / "api"
    api.mkdir(exist_ok=True)
    mods = []
    for info in pkgutil.iter_modules(creason.__path__):
        if info.name.startswith("_"): continue
        nb = _source_notebook(Path(creason.__path__[0]) / f"{info.name}.py")
        mods.append((nb or "~" + info.name, info.name, nb))
    mods.sort()
    names = {f"creason.{name}.md" for _, name, _ in mods} | {"index.md"}
    for stale in api.glob("*.md"):
        if stale.name not in names: stale.unlink()
    for _, name, nb in mods:
        importlib.import_module(f"creason.{name}")  # fail here, with the module's name, rather than in autodoc
        source = (f"Exported from the notebook [](../notebooks/{nb}.ipynb) (`nbs/{nb}.ipynb`).\n\n"
                  if nb and (DOCS / "notebooks" / f"{nb}.ipynb").exists() else "")
        _write_if_changed(api / f"creason.{name}.md",
                          f"# `creason.{name}`\n\n{source}```{{eval-rst}}\n.. automodule:: creason.{name}\n```\n")
    toc = "\n".join(f"creason.{name}" for _, name, _ in mods)
    _write_if_changed(api / "index.md",
                      "# API reference\n\nOne page per module of the `creason` package, in the order of the notebooks "
                      "that export them.\n\n```{toctree}\n:maxdepth: 1\n\n" + toc + "\n```\n")


write_api_pages()


def _drop_nbdev_docs_line(app, what, name, obj, options, lines):
    "nbdev adds 'Docs: <url>.html.md' to module docstrings; that address is not this site's, so leave it out here."
    if what == "module": lines[:] = [l for l in lines if not l.startswith("Docs: http")]


def setup(app):
    app.connect("autodoc-process-docstring", _drop_nbdev_docs_line)
