"""The reports committed in reports/: made from the params files in params/ with a recorded code version, free of
patient data and local paths, within the size budget, and reports/index.html shows them in headless Chromium.

The committed runs are the run folders under reports/ that git tracks. CREASON_SHIPPED_REPORTS=FOLDER checks every
run folder of another reports folder instead (for example a fresh `creason run` before committing it)."""
import json
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest

ROOT = Path(__file__).resolve().parent.parent
SIZE_BUDGET = 25 * 2**20  # bytes, every committed file under reports/


def shipped() -> tuple:
    "(reports folder, its run folders, its files): the committed ones, or CREASON_SHIPPED_REPORTS's."
    if os.environ.get("CREASON_SHIPPED_REPORTS"):
        root = Path(os.environ["CREASON_SHIPPED_REPORTS"]).resolve()
        files = [p for p in root.rglob("*") if p.is_file()]
    else:
        root = ROOT / "reports"
        listed = subprocess.run(["git", "ls-files", "-z", "--", "reports"], cwd=ROOT, capture_output=True, text=True)
        files = [ROOT / f for f in listed.stdout.split("\0") if f] if listed.returncode == 0 else []
    runs = sorted({f.parent for f in files if f.name == "manifest.json" and f.parent.parent == root})
    return root, runs, files


ROOT_DIR, RUNS, FILES = shipped()
needs_runs = pytest.mark.skipif(not RUNS, reason="no committed reports under reports/ (the canonical runs are committed by the lead)")


@needs_runs
@pytest.mark.parametrize("run", RUNS, ids=lambda p: p.name)
def test_report_was_made_from_its_params_file_with_a_recorded_code_version(run):
    params = ROOT / "params" / f"{run.name}.yaml"
    assert params.is_file(), f"{run.name}: no params/{run.name}.yaml"
    assert (run / "params.yaml").read_bytes() == params.read_bytes(), f"{run.name}: params.yaml differs from params/{run.name}.yaml: re-run it"
    code = json.loads((run / "manifest.json").read_text())["code"]
    assert code["version"] and re.fullmatch(r"[0-9a-f]{40}", code["commit"] or ""), code
    assert code["dirty"] is False, f"{run.name}: made from a tree with uncommitted code changes"
    known = subprocess.run(["git", "cat-file", "-e", f"{code['commit']}^{{commit}}"], cwd=ROOT, capture_output=True)
    assert known.returncode == 0, f"{run.name}: commit {code['commit']} is not in this repository's history"


@needs_runs
@pytest.mark.parametrize("run", RUNS, ids=lambda p: p.name)
def test_report_holds_no_patient_data_and_no_local_path(run, tmp_path):
    from creason.registry import open_registry
    from creason.reports import shareable_problems
    from creason.run import materialize_registry
    from creason.spec import load_spec
    spec = load_spec(run / "params.yaml")
    registry = open_registry(materialize_registry(spec, tmp_path / "registry"))  # the same patients, rebuilt from the params
    assert shareable_problems(run, registry, allow_rows=spec.report.show_patient_rows) == []


@needs_runs
def test_reports_fit_the_size_budget():
    total = sum(f.stat().st_size for f in FILES)
    assert total <= SIZE_BUDGET, f"reports/ holds {total / 2**20:.1f} MB, over the {SIZE_BUDGET / 2**20:.0f} MB budget"


@needs_runs
def test_every_index_link_resolves_to_a_shipped_file():
    page = (ROOT_DIR / "index.html").read_text(encoding="utf-8")
    shipped_files = set(FILES)
    for url in re.findall(r'(?:href|src)="([^"#]+)"', page):
        assert not urlsplit(url).scheme, url
        assert (ROOT_DIR / unquote(url.replace("&amp;", "&"))).resolve() in shipped_files, f"index.html links {url}, which is not shipped"


@needs_runs
def test_index_opens_in_headless_chromium(tmp_path):
    "The page a reader opens first: every run listed, every figure loaded, nothing fetched from another host."
    webdriver = pytest.importorskip("selenium.webdriver")
    chromium, driver_path = shutil.which("chromium"), shutil.which("chromedriver")
    if not (chromium and driver_path): pytest.skip("chromium and chromedriver are not installed (make browser)")
    from selenium.webdriver.chrome.service import Service
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1300,2000",
                 f"--user-data-dir={tempfile.mkdtemp(prefix='chromium-', dir=tmp_path)}"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"performance": "ALL", "browser": "ALL"})
    driver = webdriver.Chrome(service=Service(driver_path), options=options)
    try:
        driver.get((ROOT_DIR / "index.html").as_uri())
        driver.execute_async_script("const done = arguments[0]; if (document.readyState === 'complete') done(); else addEventListener('load', () => done())")
        # the page loads figures lazily, as a reader scrolls: load every one now, then judge them all
        driver.execute_async_script("const done = arguments[0]; const images = [...document.images]; images.forEach(i => i.loading = 'eager');"
                                    " Promise.all(images.map(i => i.decode().catch(() => null))).then(() => done())")
        listed = driver.execute_script("return [...document.querySelectorAll('section.run[id^=run-]')].map(s => s.id.slice(4))")
        broken = driver.execute_script("return [...document.images].filter(i => !i.complete || i.naturalWidth === 0).map(i => i.src)")
        requested = [json.loads(e["message"])["message"]["params"].get("request", {}).get("url", "")
                     for e in driver.get_log("performance") if '"Network.requestWillBeSent"' in e["message"]]
        errors = [e["message"] for e in driver.get_log("browser") if e.get("level") == "SEVERE"]
        assert driver.save_screenshot(str(tmp_path / "index.png"))
    finally:
        driver.quit()
    assert listed == [r.name for r in RUNS]
    assert broken == [] and errors == []
    assert not [u for u in requested if urlsplit(u).scheme in ("http", "https", "ws", "wss")]
    assert (tmp_path / "index.png").stat().st_size > 10_000  # a rendered page, not a blank one
