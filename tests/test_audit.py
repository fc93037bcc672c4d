"""Regression tests of the question builder: each way an earlier builder let the options or the prompt give the answer
away has a test on a freshly built set, and the attacking audit names a leak planted in an existing set.

The checks are functions of a question-set folder, so they can be pointed at a set built by any version of the builder."""
import json
import re

import numpy as np
import pandas as pd
import pytest

from conftest import run_cli

FAST = ("--tokenizer", "none")
LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"


def build(registry, out, *args):
    r = run_cli("questions", "--registry", registry, "--out", out, *args, *FAST)
    assert r.returncode == 0, r.stderr
    return out


def export(tmp_path_factory, name):
    folder = tmp_path_factory.mktemp(name)
    r = run_cli("registry", "export", name, "--out", folder)
    assert r.returncode == 0, r.stderr
    return folder


def questions(folder) -> pd.DataFrame:
    return pd.concat([pd.read_parquet(folder / "train.parquet"), pd.read_parquet(folder / "test.parquet")], ignore_index=True)


def gold_and_distractor_share(q: pd.DataFrame, target: str, pattern: str) -> tuple:
    "Share of golds, and of distractors, whose text matches `pattern`."
    rows = q[q["target"] == target]
    match = np.array([[bool(re.search(pattern, o)) for o in opts] for opts in rows["options"]])
    gold = match[np.arange(len(rows)), rows["answer"].map(LETTERS.index).to_numpy()]
    n = match.shape[1]
    return gold.mean(), (match.sum(axis=1) - gold).sum() / (len(rows) * (n - 1))


def sorted_gaps(q: pd.DataFrame, target: str) -> np.ndarray:
    "Gaps between adjacent numeric options of each question (display units)."
    values = np.sort(np.array([[float(o) for o in opts] for opts in q.loc[q["target"] == target, "options"]]), axis=1)
    return np.diff(values, axis=1)


@pytest.fixture(scope="module")
def pbc(tmp_path_factory):
    "pbc denoising questions with the settings of params/pbc.yaml."
    registry = export(tmp_path_factory, "pbc")
    return build(registry, tmp_path_factory.mktemp("pbc_q"), "--test-patients", 150, "--train-questions", 1000, "--seed", 0)


@pytest.fixture(scope="module")
def icu(tmp_path_factory):
    "icu denoising questions with the settings of params/icu.yaml."
    registry = export(tmp_path_factory, "icu")
    return build(registry, tmp_path_factory.mktemp("icu_q"), "--test-patients", 100, "--train-questions", 500, "--seed", 0)


@pytest.fixture(scope="module")
def flchain(tmp_path_factory):
    registry = export(tmp_path_factory, "flchain")
    return build(registry, tmp_path_factory.mktemp("flchain_q"), "--test-patients", 1000, "--train-questions", 4000, "--seed", 0)


@pytest.fixture(scope="module")
def sepsis(tmp_path_factory):
    registry = tmp_path_factory.mktemp("sepsis")
    assert run_cli("synth", "--patients", 3000, "--seed", 0, "--out", registry).returncode == 0
    denoise = build(registry, tmp_path_factory.mktemp("sepsis_d"), "--test-patients", 300, "--train-questions", 2000)
    predict = build(registry, tmp_path_factory.mktemp("sepsis_p"), "--task", "predict", "--test-patients", 300, "--train-questions", 500)
    return registry, denoise, predict


def test_pbc_alkaline_phosphatase_gold_is_not_the_only_whole_number(pbc):
    # 94% of recorded values are whole numbers at one decimal; a grid of gold ± k·166.3 made the gold the only ".0"
    gold, distractors = gold_and_distractor_share(questions(pbc), "alk.phos", r"\.0$")
    assert gold > 0.8 and abs(gold - distractors) < 0.1, (gold, distractors)


def test_icu_heaping_is_shared_by_gold_and_distractors(icu):
    # blood pressure and heart rate are recorded as multiples of 10 far more often than chance: so must distractors be
    q = questions(icu)
    for target in ("systolic", "hrtrate"):
        gold, distractors = gold_and_distractor_share(q, target, r"0$")
        assert abs(gold - distractors) < 0.1, (target, gold, distractors)


def test_flchain_age_spacing_does_not_locate_the_gold(flchain):
    # the old grid's spacing came from the gold's mixture component (spacing 7 only for golds 50-65): prior x spacing
    # likelihood beat the prior by 20 pp on age. The attackers see every spacing and the population; they must not win
    attack = json.loads((flchain / "audit.json").read_text())["attack"]
    age = attack["by_target"]["age"]
    assert not age["fails"], age
    for attacker in ("surface", "surface + population"):
        assert age[attacker]["excess_pp"] < 2 and attack["by_type"]["numeric"][attacker]["excess_pp"] < 2, (attacker, age[attacker])
    gaps = sorted_gaps(questions(flchain), "age")
    assert np.median(gaps) >= 3 and (gaps.max(axis=1) <= 1).mean() < 0.01  # options spread over the population, not a tight grid


def test_sepsis_numeric_options_are_not_one_display_step_apart(sepsis):
    # a spacing capped near a floor gave bilirubin 0.5/0.6/0.7/0.8/0.9 (and 8 other targets one step apart)
    _, denoise, _ = sepsis
    q = questions(denoise)
    for target, step in (("bilirubin", 0.1), ("lactate", 0.1), ("creatinine", 0.1), ("procalcitonin", 0.01)):
        gaps = sorted_gaps(q, target)
        assert (gaps.max(axis=1) <= step + 1e-9).mean() < 0.01, target  # never a run of consecutive display values
        assert np.median(gaps) >= 2 * step - 1e-9, (target, np.median(gaps))


def test_closure_hides_qsofa_from_the_cns_score(sepsis):
    # qSOFA - [RR >= 22] - [SBP <= 100] gave "GCS < 15" exactly when the CNS score was masked beside qSOFA
    _, denoise, _ = sepsis
    cns = questions(denoise).query("target == 'sofa_cns'")
    assert len(cns) and cns["excluded_features"].map(lambda e: {"gcs", "qsofa"} <= set(e)).all()
    assert not cns["prompt"].map(lambda p: "\nqSOFA score: " in p[1]["content"]).any()


def test_closure_hides_what_defines_septic_shock(sepsis):
    # "no vasopressor => no shock" read from the cardiovascular SOFA score and the norepinephrine dose
    registry, _, predict = sepsis
    shock = questions(predict).query("target == 'septic_shock'")
    dictionary = (registry / "dictionary.yaml").read_text()
    hidden = {"vasopressor", "lactate", "sofa_cardiovascular"}
    if re.search(r"key: norepinephrine_dose[^\n]*derived_from|derived_from:[^\n]*norepinephrine_dose", dictionary): hidden.add("norepinephrine_dose")
    assert len(shock) and shock["excluded_features"].map(lambda e: hidden <= set(e)).all(), hidden


def test_an_undeclared_definition_is_named_and_dropped(tmp_path):
    # a target computed from two shown lines that the dictionary does not declare
    rng = np.random.default_rng(0)
    n = 1500
    a, b = rng.integers(0, 100, n), rng.integers(0, 100, n)
    pd.DataFrame({"id": [f"P{i}" for i in range(n)], "a": a, "b": b, "noise": rng.normal(0, 1, n).round(2),
                  "high": np.where(a + b > 100, "Yes", "No"), "coin": np.where(rng.random(n) < 0.5, "Yes", "No")}).to_csv(tmp_path / "r.csv", index=False)
    (tmp_path / "d.yaml").write_text("id: id\nfeatures:\n  - {key: id, name: id, type: identifier}\n"
                                     + "".join(f"  - {{key: {k}, name: {k}, section: S, type: numeric, precision: {p}}}\n" for k, p in (("a", 0), ("b", 0), ("noise", 2)))
                                     + "".join(f"  - {{key: {k}, name: {k}, section: S, type: binary, codes: {{'No': 'No', 'Yes': 'Yes'}}}}\n" for k in ("high", "coin")))
    assert run_cli("registry", "export", "private", "--data", tmp_path / "r.csv", "--dictionary", tmp_path / "d.yaml", "--out", tmp_path / "reg").returncode == 0
    r = run_cli("questions", "--registry", tmp_path / "reg", "--out", tmp_path / "q", "--test-patients", 300, "--train-questions", 800, *FAST)
    assert r.returncode == 0, r.stderr
    audit = json.loads((tmp_path / "q" / "audit.json").read_text())
    assert audit["targets"]["dropped"]["high"]["reason"].startswith("target dropped: near-deterministic"), audit["targets"]["dropped"]
    assert set(audit["headroom"]["by_target"]["high"]["top_features"][:2]) == {"a", "b"}
    assert "high (near-deterministic)" in r.stdout and "coin" not in audit["targets"]["dropped"]
    assert "high" not in set(pd.read_parquet(tmp_path / "q" / "test.parquet")["target"])


def test_audit_names_a_leak_planted_in_an_existing_set(pbc, tmp_path):
    # the same attackers on a folder from disk: give one target's gold an odd precision, the original implementation's leak
    leaky = tmp_path / "leaky"
    leaky.mkdir()
    for name in ("train.parquet", "test.parquet"):
        q = pd.read_parquet(pbc / name).drop(columns="option_prior")
        rows = q["target"] == "bili"
        q.loc[rows, "options"] = pd.Series([[o + "0" if i == LETTERS.index(a) else o for i, o in enumerate(opts)]
                                            for opts, a in zip(q.loc[rows, "options"], q.loc[rows, "answer"])], index=q.index[rows])
        q.to_parquet(leaky / name)
    for name in ("manifest.json", "audit.json"): (leaky / name).write_bytes((pbc / name).read_bytes())
    r = run_cli("audit", "--questions", leaky, "--out", tmp_path / "attack.json", "--no-headroom")
    assert r.returncode == 0, r.stderr
    result = json.loads((tmp_path / "attack.json").read_text())["attack"]
    assert "bili" in result["failing"] and result["worst"]["surface"]["target"] == "bili", result["worst"]
    assert "surface worst bili" in r.stdout
