"Expert kit from the command line: blinded export, analysis of a known ratings file, consultations; and the form in headless Chromium."
import json
import shutil
import tempfile
import time
from pathlib import Path

import pandas as pd
import pytest
from scipy.stats import binomtest

from creason.core import write_json, write_parquet

INJECTION = '</div></pre><script>window.pwned = 1</script><img src=x onerror="window.pwned = 2"> & <b>bold</b>'
TARGETS = [("denoise", "lactate", "Severity", ["1.2", "2.4", "3.6", "4.8"]),
           ("denoise", "pathogen", "Microbiology", ["E. coli", "S. aureus", "K. pneumoniae"]),
           ("predict", "died", "Outcomes", ["No", "Yes"])]


def write_questions(path, per_target=5):
    "A question parquet in the question-set contract: masked-value questions over three targets."
    rows = []
    for task, target, section, options in TARGETS:
        for i in range(per_target):
            rid = f"P{i:03d}"
            user = (f"[Demographics]\nAge (years): {60 + i}\n\n[{section}]\n{target}: [MASK]\n\n"
                    f"What would be the masked value of '{target}' in section [{section}]?\n"
                    + "\n".join(f"{'ABCDE'[k]}. {o}" for k, o in enumerate(options)))
            rows.append({"question_id": f"{rid}:{target}", "record_id": rid, "split": "test", "task": task, "target": target,
                         "target_type": "numeric", "section": section,
                         "prompt": [{"role": "system", "content": "Answer without disclaimers."}, {"role": "user", "content": user},
                                    {"role": "assistant", "content": "Let's think step by step."}],
                         "options": options, "answer": "B", "gold_value": options[1], "excluded_features": [],
                         "n_prompt_tokens": 80, "seed": 0})
    return write_parquet(pd.DataFrame(rows), path)


def write_run(folder, questions_file, run_name, model_id, letter, voice, extra=""):
    "An evaluation run folder in the contract: predictions.parquet, metrics.json, manifest.json."
    qs = pd.read_parquet(questions_file)
    preds = qs[["question_id", "record_id", "target", "section", "task", "answer"]].assign(
        completion=[f"A {voice} line of reasoning about {q}.{extra}\nSo the answer is \\boxed{{{letter}}}." for q in qs["question_id"]],
        predicted=letter, method="boxed", option_probs=[[1.0 / len(o)] * len(o) for o in qs["options"]],
        correct=qs["answer"] == letter, truncated=False, n_completion_tokens=40)
    write_parquet(preds, Path(folder) / "predictions.parquet")
    write_json(Path(folder) / "metrics.json", {"accuracy": float(preds["correct"].mean())})
    write_json(Path(folder) / "manifest.json", {"questions_file": str(questions_file), "model_id": model_id, "run_name": run_name})
    return Path(folder)


@pytest.fixture
def runs(tmp_path):
    qfile = write_questions(tmp_path / "questions" / "test.parquet")
    first = write_run(tmp_path / "runs" / "new", qfile, "c-reason", "c-reason-14b", "B", "careful")
    second = write_run(tmp_path / "runs" / "old", qfile, "phi4-base", "phi-4", "A", "hasty", extra=INJECTION)
    return first, second


def verdict_rows(key, rater, verdicts, criterion="overall"):
    "Ratings rows from verdicts W/T/L (first run better / tie / second run better), in the key's item order."
    def choice(row, v):
        if v == "T": return "tie"
        better = row["run_1"] if v == "W" else row["run_2"]
        return "A" if row["A"] == better else "B"
    return pd.DataFrame({"form_id": key["form_id"], "item_id": key["item_id"], "rater": rater, "criterion": criterion,
                         "choice": [choice(r, v) for r, v in zip(key.to_dict("records"), verdicts)], "comment": "",
                         "first_rated_at": "2026-02-01T09:00:00.000Z", "rated_at": "2026-02-01T09:01:00.000Z"})


def test_export_is_blinded_and_balanced(tmp_path, runs, cli):
    r = cli("expert", "export", *runs, "--out", tmp_path / "form", "--items", "12", "--seed", "4", "--criteria", "antibiotic")
    assert r.returncode == 0, r.stderr
    page = (tmp_path / "form" / "form.html").read_text(encoding="utf-8")
    key = pd.read_csv(tmp_path / "form" / "key.csv", dtype=str)
    assert list(key.columns[:3]) == ["item_id", "A", "B"] and len(key) == 12
    assert key.groupby("target").size().tolist() == [4, 4, 4]  # stratified: equal allocation
    assert sorted(key["A"].value_counts().tolist()) == [6, 6]  # A/B sides balanced
    assert not any(name in page for name in ("c-reason", "phi4-base", "phi-4"))  # no run or model name in the form
    assert "Reference answer" not in page and "&lt;script&gt;window.pwned" in page and "<script>window.pwned" not in page
    assert "Appropriateness of the initial empirical antibiotic therapy" in page
    r = cli("expert", "export", *runs, "--out", tmp_path / "gold", "--items", "3", "--show-gold")
    assert r.returncode == 0 and "Reference answer: B (" in (tmp_path / "gold" / "form.html").read_text(encoding="utf-8")


def test_analysis_of_a_known_file(tmp_path, runs, cli):
    assert cli("expert", "export", *runs, "--out", tmp_path / "form", "--items", "15").returncode == 0
    key = pd.read_csv(tmp_path / "form" / "key.csv", dtype=str)
    #                         15 items: 10 wins, 3 losses, 2 ties for the first run
    pd.concat([verdict_rows(key, "rater-1", "WWWWWWWWWWLLLTT"),
               verdict_rows(key, "rater-2", "WWWWWWWWWLLLTTW")]).to_csv(tmp_path / "ratings.csv", index=False)
    r = cli("expert", "analyze", tmp_path / "ratings.csv", "--key", tmp_path / "form" / "key.csv", "--out", tmp_path / "report")
    assert r.returncode == 0, r.stderr
    summary = json.loads((tmp_path / "report" / "summary.json").read_text())
    pair = summary["pairs"][0]
    assert (pair["first"], pair["second"]) == ("c-reason", "phi4-base")
    assert (pair["wins"], pair["losses"], pair["ties"], pair["n"]) == (20, 6, 4, 30)  # ties counted and reported
    assert pair["p_value"] == pytest.approx(binomtest(20, 26, 0.5, alternative="two-sided").pvalue, rel=1e-12)
    assert pair["agreement"]["method"] == "cohen" and pair["agreement"]["n_items"] == 15
    # hand-computed: agree on 12 of 15; W/L/T marginals 10/3/2 and 10/3/2 -> p_e = (100+9+4)/225
    assert pair["agreement"]["kappa"] == pytest.approx((12 / 15 - 113 / 225) / (1 - 113 / 225), rel=1e-12)
    assert {p.name for p in (tmp_path / "report").iterdir()} == {"summary.json", "preferences.csv", "preferences.md", "preferences.png"}
    assert "c-reason vs phi4-base, overall: 20 wins, 4 ties, 6 losses" in r.stdout
    assert "rater-1" not in (tmp_path / "report" / "summary.json").read_text()


def test_fleiss_kappa_for_three_raters(tmp_path, runs, cli):
    assert cli("expert", "export", *runs, "--out", tmp_path / "form", "--items", "4").returncode == 0
    key = pd.read_csv(tmp_path / "form" / "key.csv", dtype=str)
    pd.concat([verdict_rows(key, "r1", "WWLT"), verdict_rows(key, "r2", "WWLW"), verdict_rows(key, "r3", "WTLW")]).to_csv(
        tmp_path / "ratings.csv", index=False)
    assert cli("expert", "analyze", tmp_path / "ratings.csv", "--key", tmp_path / "form" / "key.csv", "--out", tmp_path / "rep").returncode == 0
    agreement = json.loads((tmp_path / "rep" / "summary.json").read_text())["pairs"][0]["agreement"]
    # by hand: per-item agreement P_i = 1, 1/3, 1, 1/3 -> P-bar = 2/3; shares W 7/12, T 2/12, L 3/12 -> P_e = 62/144
    assert agreement["method"] == "fleiss"
    assert agreement["kappa"] == pytest.approx((2 / 3 - 62 / 144) / (1 - 62 / 144), rel=1e-12)


def test_bad_ratings_are_refused(tmp_path, runs, cli):
    assert cli("expert", "export", *runs, "--out", tmp_path / "form", "--items", "3").returncode == 0
    key = pd.read_csv(tmp_path / "form" / "key.csv", dtype=str)
    bad = verdict_rows(key, "r1", "WWL")
    bad.loc[1, "choice"] = "maybe"
    bad.to_csv(tmp_path / "bad.csv", index=False)
    r = cli("expert", "analyze", tmp_path / "bad.csv", "--key", tmp_path / "form" / "key.csv", "--out", tmp_path / "rep")
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert "bad.csv, column 'choice', row 2, value 'maybe': choice must be A, tie or B" in r.stderr
    r = cli("expert", "export", runs[0], runs[0], "--out", tmp_path / "same")
    assert r.returncode == 2 and "both runs are named 'c-reason'" in r.stderr


def test_consultations_from_registry_and_requests(tmp_path, cli):
    assert cli("synth", "--patients", "300", "--seed", "2", "--out", tmp_path / "reg").returncode == 0
    r = cli("consult", "--registry", tmp_path / "reg", "--out", tmp_path / "consult", "--cases", "5")
    assert r.returncode == 0, r.stderr
    prompts = pd.read_parquet(tmp_path / "consult" / "consultations.parquet")
    assert len(prompts) == 5 and set(prompts["task"]) == {"consult"}
    user = prompts["prompt"].iloc[0][1]["content"]
    assert "[Microbiology]" in user and "Appropriate initial empirical therapy" not in user
    manifest = json.loads((tmp_path / "consult" / "manifest.json").read_text())
    assert manifest["withheld"] == ["empirical_therapy_appropriate"] and "region" in manifest["not_shown"]
    (tmp_path / "requests.csv").write_text("request_id,patient_summary,microbiology\nR1,\"80 y, CKD\",\"E. coli, ESBL\"\n", encoding="utf-8")
    r = cli("consult", "--requests", tmp_path / "requests.csv", "--out", tmp_path / "req")
    assert r.returncode == 0, r.stderr
    assert pd.read_parquet(tmp_path / "req" / "consultations.parquet")["prompt"].iloc[0][1]["content"].startswith("[Patient summary]\n80 y, CKD")
    r = cli("consult", "--registry", tmp_path / "reg", "--out", tmp_path / "answered", "--cases", "2", "--model", "tiny",
            "--max-new-tokens", "8", "--run-name", "tiny")
    assert r.returncode == 0, r.stderr
    answers = pd.read_parquet(tmp_path / "answered" / "runs" / "tiny" / "predictions.parquet")
    assert len(answers) == 2 and answers["completion"].map(len).gt(0).all()
    (tmp_path / "layout.yaml").write_text("parts:\n  - {title: Cultures, sections: [Cultures]}\n", encoding="utf-8")
    r = cli("consult", "--registry", tmp_path / "reg", "--out", tmp_path / "x", "--layout", tmp_path / "layout.yaml")
    assert r.returncode == 2 and "section 'Cultures'" in r.stderr


# --- The form in a real browser ---------------------------------------------------------------------------------

CHROMIUM, CHROMEDRIVER = shutil.which("chromium"), shutil.which("chromedriver")
# Without the background-networking switches Chromium keeps trying to reach Google's services.
CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--disable-dev-shm-usage", "--window-size=1400,1000")


@pytest.fixture
def browser(tmp_path):
    webdriver = pytest.importorskip("selenium.webdriver")
    if not (CHROMIUM and CHROMEDRIVER): pytest.skip("chromium and chromedriver are not installed")
    from selenium.webdriver.chrome.service import Service
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in CHROMIUM_FLAGS: options.add_argument(flag)
    options.add_argument(f"--user-data-dir={tempfile.mkdtemp(prefix='chromium-', dir=tmp_path)}")
    options.add_experimental_option("prefs", {"download.default_directory": str(downloads), "download.prompt_for_download": False})
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.execute_cdp_cmd("Page.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(downloads)})
    driver.downloads = downloads
    yield driver
    driver.quit()


def click_choice(driver, item_id, criterion, value):
    "Click the visible button of a choice, as a rater would (the radio input itself is visually hidden)."
    from selenium.webdriver.common.by import By
    span = driver.find_element(By.CSS_SELECTOR, f'#item-{item_id} input[name="r-{item_id}-{criterion}"][value="{value}"] + span')
    driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", span)
    span.click()


def wait_for_download(folder: Path, timeout=15.0) -> Path:
    end = time.time() + timeout
    while time.time() < end:
        done = [p for p in folder.glob("*.csv")]
        if done and not list(folder.glob("*.crdownload")): return done[0]
        time.sleep(0.1)
    raise AssertionError(f"no download in {folder}")


def test_form_in_headless_chromium(tmp_path, runs, cli, browser):
    from selenium.webdriver.common.by import By
    started = time.time()
    assert cli("expert", "export", *runs, "--out", tmp_path / "form", "--items", "9", "--seed", "2", "--criteria", "antibiotic").returncode == 0
    assert cli("expert", "export", *runs, "--out", tmp_path / "other", "--items", "9", "--seed", "3").returncode == 0
    key = pd.read_csv(tmp_path / "form" / "key.csv", dtype=str)
    url = (tmp_path / "form" / "form.html").resolve().as_uri()
    browser.get(url)
    assert browser.title == "Expert review of clinical reasoning"
    assert browser.execute_script("return window.pwned === undefined")  # the injected script never ran
    assert browser.find_elements(By.CSS_SELECTOR, ".reasoning img, .reasoning script, .reasoning b") == []
    assert "<script>window.pwned = 1</script>" in browser.page_source.replace("&lt;", "<").replace("&gt;", ">")
    assert "<script>window.pwned = 1</script>" in " ".join(e.text for e in browser.find_elements(By.CSS_SELECTOR, ".reasoning"))
    assert browser.find_element(By.ID, "progress").text == "0 of 9 items rated"

    # Rate every item overall (cycling A, tie, B), the empirical-therapy criterion on the first three, one comment.
    cycle = ["A", "tie", "B"]
    for i, item_id in enumerate(key["item_id"]):
        click_choice(browser, item_id, "overall", cycle[i % 3])
        if i < 3: click_choice(browser, item_id, "empirical_therapy", "A")
    comment = browser.find_element(By.CSS_SELECTOR, f"#item-{key['item_id'][0]} textarea")
    comment.send_keys('Both miss the "ESBL" risk, but A, at least,\nnames it.')
    rater = browser.find_element(By.ID, "rater")
    rater.send_keys("dr-park")
    assert browser.find_element(By.ID, "progress").text == "9 of 9 items rated"
    browser.execute_script("window.scrollTo(0, 0)")
    browser.save_screenshot("/tmp/expert_form_top.png")
    click_choice(browser, key["item_id"][0], "overall", "A")  # re-choose the same: no change
    browser.save_screenshot("/tmp/expert_form_item.png")

    # Reload: every choice, the comment and the rater are restored from localStorage.
    browser.refresh()
    assert browser.find_element(By.ID, "progress").text == "9 of 9 items rated"
    assert len(browser.execute_script("return document.querySelectorAll('input[type=radio]:checked')")) == 12
    assert browser.find_element(By.ID, "rater").get_attribute("value") == "dr-park"
    assert browser.find_element(By.CSS_SELECTOR, f"#item-{key['item_id'][0]} textarea").get_attribute("value").startswith("Both miss")

    # A second form opened from disk in the same browser does not see the first form's ratings.
    browser.get((tmp_path / "other" / "form.html").resolve().as_uri())
    assert browser.find_element(By.ID, "progress").text == "0 of 9 items rated"
    browser.get(url)

    browser.find_element(By.ID, "download").click()
    ratings_file = wait_for_download(browser.downloads)
    ratings = pd.read_csv(ratings_file, dtype=str, keep_default_na=False, encoding="utf-8-sig")
    assert list(ratings.columns) == ["form_id", "item_id", "rater", "criterion", "choice", "comment", "first_rated_at", "rated_at"]
    assert len(ratings) == 12 and set(ratings["rater"]) == {"dr-park"}
    assert ratings.loc[ratings["comment"] != "", "comment"].tolist() == ['Both miss the "ESBL" risk, but A, at least,\nnames it.']
    assert all(ratings["rated_at"].str.match(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z"))
    severe = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
    assert severe == [], severe  # no CSP violation, no script error

    r = cli("expert", "analyze", ratings_file, "--key", tmp_path / "form" / "key.csv", "--out", tmp_path / "report")
    assert r.returncode == 0, r.stderr
    pair = json.loads((tmp_path / "report" / "summary.json").read_text())["pairs"][0]
    overall = ratings[ratings["criterion"] == "overall"].merge(key, on=["form_id", "item_id"])
    preferred = overall.apply(lambda r: r["A"] if r["choice"] == "A" else r["B"] if r["choice"] == "B" else None, axis=1)
    expected = ((preferred == "c-reason").sum(), (preferred == "phi4-base").sum(), preferred.isna().sum())
    assert (pair["wins"], pair["losses"], pair["ties"]) == tuple(int(x) for x in expected)
    assert pair["ties"] == 3 and pair["wins"] + pair["losses"] == 6
    assert pair["p_value"] == pytest.approx(binomtest(pair["wins"], 6).pvalue, rel=1e-12)
    assert pair["criteria"]["empirical_therapy"]["n"] == 3
    print(f"browser test took {time.time() - started:.1f} s")
