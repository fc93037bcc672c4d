"Evaluation from the command line: run folders, the --limit subset, paired comparisons, baselines on the same questions, clear errors."
import json

import numpy as np
import pandas as pd
import pytest
from scipy.stats import binomtest

from conftest import run_cli
from creason.evaluate import cluster_sums, cluster_weights, ratio_replicates

TARGETS = "age,lactate,sex,dementia,acquisition,clinical_frailty_scale,sofa_total"
CONTRACT = ["question_id", "record_id", "target", "section", "task", "answer", "completion", "predicted", "method",
            "option_probs", "correct", "truncated", "n_completion_tokens"]


def ok(result):
    assert result.returncode == 0, result.stderr
    return result


@pytest.fixture(scope="module")
def question_set(tmp_path_factory):
    root = tmp_path_factory.mktemp("evaluate")
    ok(run_cli("synth", "--patients", 800, "--seed", 3, "--out", root / "registry"))
    ok(run_cli("questions", "--registry", root / "registry", "--out", root / "questions", "--test-patients", 60,
               "--train-questions", 200, "--seed", 3, "--targets", TARGETS, "--tokenizer", "none"))
    return root


@pytest.fixture(scope="module")
def tiny_run(question_set):
    out = question_set / "tiny_run"
    ok(run_cli("evaluate", "--model", "tiny", "--questions", question_set / "questions", "--out", out, "--limit", 42,
               "--max-new-tokens", 3, "--batch-size", 8, "--seed", 1, "--resamples", 300))
    return out


def test_run_folder(tiny_run, question_set):
    assert {p.name for p in tiny_run.iterdir()} == {"predictions.parquet", "metrics.json", "per_target.csv", "per_section.csv", "manifest.json"}
    p = pd.read_parquet(tiny_run / "predictions.parquet")
    assert list(p.columns[:len(CONTRACT)]) == CONTRACT and len(p) == 42
    assert set(p["method"]) <= {"boxed", "logprob"}
    m = json.loads((tiny_run / "metrics.json").read_text())
    for key in ("accuracy", "macro_accuracy", "ci_low", "ci_high", "parse_failure_rate", "fallback_rate", "truncation_rate",
                "per_target", "per_section", "per_task", "binary", "multiclass", "bootstrap", "questions_file", "model_id", "run_name",
                "prior_accuracy", "skill_above_prior", "balanced_accuracy", "letters", "chosen_values"):
        assert key in m, key
    assert m["ci_low"] <= m["accuracy"] <= m["ci_high"]
    assert m["accuracy"] == pytest.approx(p["correct"].mean(), abs=1e-4)
    assert m["bootstrap"]["resamples"] == 300 and m["bootstrap"]["seed"] == 1
    assert all(r["positive_rule"].startswith("dictionary") for r in m["binary"])  # found through the question set's manifest
    manifest = json.loads((tiny_run / "manifest.json").read_text())
    for key in ("questions_file", "model_id", "run_name", "engine", "sampling", "seeds", "timings", "libraries", "code"):
        assert key in manifest, key
    table = pd.read_csv(tiny_run / "per_target.csv")
    assert table["suppressed"].all()  # 6 questions per target < 10: no small cells published
    assert table["accuracy"].isna().all()


def test_limit_is_stratified_and_reproducible(tiny_run, question_set):
    test = pd.read_parquet(question_set / "questions" / "test.parquet")
    p = pd.read_parquet(tiny_run / "predictions.parquet")
    counts = p["target"].value_counts()
    assert set(counts.index) == set(TARGETS.split(",")) and counts.between(5, 7).all()  # 42 over 7 targets, by their sizes
    assert p["record_id"].nunique() >= 25  # not the first rows' one or two patients
    assert p["question_id"].tolist() == [q for q in test["question_id"] if q in set(p["question_id"])]  # table order kept


def test_compare_against_scipy(tiny_run, tmp_path):
    a = pd.read_parquet(tiny_run / "predictions.parquet")
    b = a.copy()
    flip = np.arange(len(b)) % 3 == 0  # flip a third of the answers: right -> wrong and wrong -> right
    b["correct"] = np.where(flip, ~b["correct"], b["correct"])
    (tmp_path / "b").mkdir()
    b.to_parquet(tmp_path / "b" / "predictions.parquet", index=False)
    r = ok(run_cli("compare", tiny_run, tmp_path / "b", "--out", tmp_path / "cmp", "--resamples", 500))
    assert "McNemar" in r.stdout
    c = json.loads((tmp_path / "cmp" / "comparison.json").read_text())
    right_a_only = int((a["correct"] & ~b["correct"]).sum())
    right_b_only = int((~a["correct"] & b["correct"]).sum())
    assert (c["mcnemar"]["right_in_a_only"], c["mcnemar"]["right_in_b_only"]) == (right_a_only, right_b_only)
    assert c["mcnemar"]["p_value"] == pytest.approx(binomtest(right_a_only, right_a_only + right_b_only, 0.5).pvalue, rel=1e-9)
    assert c["difference"] == pytest.approx(b["correct"].mean() - a["correct"].mean(), abs=1e-4)
    assert c["ci_low"] <= c["difference"] <= c["ci_high"]
    assert (tmp_path / "cmp" / "per_target_comparison.csv").is_file()


def test_baselines_on_the_same_questions(tiny_run, question_set):
    out = question_set / "baselines"
    r = ok(run_cli("baseline", "--questions", question_set / "questions", "--out", out, "--limit", 42, "--seed", 1, "--bootstrap", 300))
    assert "classical" in r.stdout
    m = json.loads((out / "metrics.json").read_text())
    for name in ("chance", "majority", "prior", "classical"):
        assert m[name]["n_questions"] == 42 and "per_target" in m[name] and m[name]["ci_low"] <= m[name]["accuracy"] <= m[name]["ci_high"]
    baseline_ids = set(pd.read_parquet(out / "predictions.parquet")["question_id"])
    assert baseline_ids == set(pd.read_parquet(tiny_run / "predictions.parquet")["question_id"])
    llm = json.loads((tiny_run / "metrics.json").read_text())
    assert m["chance"]["accuracy"] == pytest.approx(llm["chance"], abs=1e-4)  # the same questions, the same option counts
    # the evaluation's own population prior is the baselines stage's prior on the same questions, and skill is the gap to it
    assert llm["prior_accuracy"] == pytest.approx(m["prior"]["accuracy"], abs=1e-4)
    assert llm["skill_above_prior"] == pytest.approx(llm["accuracy"] - llm["prior_accuracy"], abs=2e-4)
    assert llm["skill_ci_low"] <= llm["skill_above_prior"] <= llm["skill_ci_high"]
    assert sum(llm["letters"]["chosen"].values()) == sum(llm["letters"]["gold"].values()) == 42
    assert m["classical"]["accuracy"] > m["chance"]["accuracy"]
    assert len(m["classical"]["models"]) == 7
    assert set(pd.read_csv(out / "per_target.csv").columns) >= {"target", "chance", "majority", "prior", "classical", "suppressed"}


def test_vectorized_bootstrap_matches_explicit_resampling():
    rng = np.random.default_rng(0)
    patients = rng.integers(0, 30, 400)
    target = rng.integers(0, 4, 400)
    correct = rng.random(400) < 0.6
    weights = cluster_weights(30, 50, seed=9)
    fast = ratio_replicates(weights, cluster_sums(patients, target, correct, 30, 4), cluster_sums(patients, target, np.ones(400), 30, 4))
    frame = pd.DataFrame({"patient": patients, "target": target, "correct": correct})
    for b in range(50):  # the same resample written out: each patient's questions repeated as often as it was drawn
        drawn = pd.concat([frame[frame["patient"] == p] for p in range(30) for _ in range(int(weights[b, p]))])
        slow = drawn.groupby("target")["correct"].mean().reindex(range(4))
        np.testing.assert_allclose(fast[b], slow.to_numpy(), equal_nan=True)


@pytest.mark.parametrize("args, message", [
    (["evaluate", "--model", "tiny", "--questions", "/no/such/questions", "--out", "/tmp/x"], "no questions file found"),
    (["evaluate", "--model", "tiny", "--questions", "QS", "--out", "/tmp/x", "--limit", "0"], "--limit must be at least 1"),
    (["evaluate", "--model", "tiny", "--questions", "QS", "--out", "/tmp/x", "--engine", "openai"], "--base-url is required by the openai engine"),
    (["evaluate", "--model", "tiny", "--questions", "QS", "--out", "/tmp/x", "--protocol", "answers"], "--protocol must be one of auto,"),
    (["evaluate", "--questions", "QS", "--out", "/tmp/x"], "--model"),  # required without a params file (tyro's message)
    (["compare", "/no/run/a", "/no/run/b"], "not an evaluation run folder"),
    (["baseline", "--questions", "QS", "--out", "/tmp/x", "--registry", "/no/registry"], "not found"),
])
def test_errors_are_messages(question_set, args, message):
    args = [str(question_set / "questions") if a == "QS" else a for a in args]
    r = run_cli(*args)
    assert r.returncode == 2 and message in r.stderr and "Traceback" not in r.stderr, r.stderr


def test_cpu_defaults_are_announced(tiny_run, question_set):
    "Without a GPU and without --protocol: the answer protocol and its 3-token budget, said in one line."
    r = ok(run_cli("evaluate", "--model", "tiny", "--questions", question_set / "questions", "--out", question_set / "defaults",
                   "--limit", 6, "--device", "cpu", "--bootstrap", 50))  # the spelling compare and baseline also accept
    assert "no GPU: the answer protocol, 3 new tokens per question" in r.stderr and "--protocol reasoning" in r.stderr
    assert "questions [" in r.stderr  # the per-question progress bar, with its time estimate
    manifest = json.loads((question_set / "defaults" / "manifest.json").read_text())
    assert (manifest["params"]["protocol"], manifest["params"]["max_new_tokens"]) == ("answer", 3)
    reasoning = ok(run_cli("evaluate", "--model", "tiny", "--questions", question_set / "questions", "--out", question_set / "free",
                           "--limit", 2, "--device", "cpu", "--bootstrap", 50, "--protocol", "reasoning", "--max-new-tokens", 4))
    assert "no GPU" not in reasoning.stderr
    assert json.loads((question_set / "free" / "manifest.json").read_text())["params"]["protocol"] == "reasoning"


def test_compare_refuses_different_question_sets(tiny_run, tmp_path):
    other = pd.read_parquet(tiny_run / "predictions.parquet").assign(answer="E")
    (tmp_path / "other").mkdir()
    other.to_parquet(tmp_path / "other" / "predictions.parquet", index=False)
    r = run_cli("compare", tiny_run, tmp_path / "other")
    assert r.returncode == 2 and "different gold letters" in r.stderr


def test_params_file_gives_the_defaults(question_set, tmp_path):
    "`--params`: the file's model: and evaluate: section are the defaults, the options override them, a file value is named by its key."
    params = tmp_path / "p.yaml"
    params.write_text("registry: {synthetic: {}}\nmodel: tiny\nevaluate: {limit: 6, resamples: 50, max_new_tokens: 3, device: cpu, seed: 2}\n")
    out = tmp_path / "run"
    ok(run_cli("evaluate", "--params", params, "--questions", question_set / "questions", "--out", out, "--limit", 4))
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["model_id"].startswith("tiny") and manifest["n_questions"] == 4
    assert (manifest["params"]["limit"], manifest["params"]["resamples"], manifest["params"]["seed"]) == (4, 50, 2)
    params.write_text("registry: {synthetic: {}}\nmodel: tiny\nevaluate: {batch_size: 0}\n")
    r = run_cli("evaluate", "--params", params, "--questions", question_set / "questions", "--out", tmp_path / "bad")
    assert r.returncode == 2 and f"{params}: evaluate.batch_size must be at least 1, got 0" in r.stderr, r.stderr


def test_gold_balanced_view_is_deterministic_and_balanced(question_set):
    from creason.evaluate import read_questions, select_questions
    questions = read_questions(question_set / "questions")
    view = select_questions(questions, None, 0, "gold")
    assert 0 < len(view) < len(questions) and view.equals(select_questions(questions, None, 0, "gold"))
    coded = view[view["target_type"].isin(["binary", "categorical"])]
    for target, gold in coded.groupby("target")["gold_value"]:
        assert gold.value_counts().nunique() == 1, target  # every kept class is the gold equally often
    assert select_questions(questions, None, 0, "none").equals(questions.reset_index(drop=True))
