"Question sets from the command line: byte-identical rebuilds, disjoint splits, option-only checks at chance, the derivation closure, outcome rules, requests the registry cannot meet, clear errors."
import json
import re

import numpy as np
import pandas as pd
import pytest

from conftest import run_cli
from creason.registry import open_registry

FILES = ("train.parquet", "test.parquet", "audit.json", "manifest.json")
FAST = ("--tokenizer", "none")  # token counting is covered by the notebook and one test below


def build(cli, registry, out, *args):
    r = cli("questions", "--registry", registry, "--out", out, *args)
    assert r.returncode == 0, r.stderr
    return out


@pytest.fixture(scope="session")
def synthetic(tmp_path_factory):
    folder = tmp_path_factory.mktemp("synthetic")
    r = run_cli("synth", "--patients", 2000, "--seed", 11, "--out", folder)
    assert r.returncode == 0, r.stderr
    return folder


@pytest.fixture(scope="session")
def denoise(tmp_path_factory, synthetic):
    outs = [tmp_path_factory.mktemp(f"denoise{i}") for i in (1, 2)]
    for out in outs: build(run_cli, synthetic, out, "--test-patients", 400, "--train-questions", 3000, "--seed", 5, *FAST)
    return outs


@pytest.fixture(scope="session")
def predict(tmp_path_factory, synthetic):
    return build(run_cli, synthetic, tmp_path_factory.mktemp("predict"), "--task", "predict", "--test-patients", 400,
                 "--train-questions", 1000, *FAST)


@pytest.fixture(scope="session")
def icu(tmp_path_factory):
    folder = tmp_path_factory.mktemp("icu")
    r = run_cli("registry", "export", "icu", "--out", folder)
    assert r.returncode == 0, r.stderr
    return folder


def read(out):
    return pd.read_parquet(out / "train.parquet"), pd.read_parquet(out / "test.parquet"), json.loads((out / "audit.json").read_text())


def test_rebuild_is_byte_identical(denoise):
    for name in FILES:
        assert (denoise[0] / name).read_bytes() == (denoise[1] / name).read_bytes(), name


def test_contract_columns_and_datasets(denoise):
    from datasets import Dataset
    train, test, _ = read(denoise[0])
    columns = ["question_id", "record_id", "split", "task", "target", "target_type", "section", "prompt", "options",
               "answer", "gold_value", "excluded_features", "n_prompt_tokens", "seed", "option_prior"]
    assert list(train.columns) == columns and list(test.columns) == columns
    assert all(abs(sum(p) - 1) < 1e-4 and len(p) == len(o) for p, o in zip(test["option_prior"], test["options"]))
    assert train["question_id"].is_unique and test["question_id"].is_unique
    assert len(train) == 3000 and set(train["split"]) == {"train"} and set(test["split"]) == {"test"}
    row = test.iloc[0]
    assert [m["role"] for m in row["prompt"]] == ["system", "user", "assistant"]
    assert "\\boxed{}" in row["prompt"][0]["content"] and row["prompt"][2]["content"] == "Let's think step by step."
    assert row["options"][ord(row["answer"]) - 65] == row["gold_value"]
    assert f"What would be the masked value of " in row["prompt"][1]["content"]
    ds = Dataset.from_parquet(str(denoise[0] / "train.parquet"))
    assert ds.num_rows == 3000 and "prompt" in ds.column_names


def test_no_patient_in_both_splits(denoise):
    train, test, audit = read(denoise[0])
    assert not set(train["record_id"]) & set(test["record_id"])
    assert audit["split"]["units_in_both_question_tables"] == 0
    assert test["record_id"].nunique() == 400


def test_test_set_is_every_recorded_eligible_feature(denoise, synthetic):
    _, test, audit = read(denoise[0])
    registry = open_registry(synthetic)
    eligible = list(audit["targets"]["eligible"])
    data = registry.data.set_index(registry.dictionary.id_column)
    recorded = int(data.loc[test["record_id"].unique(), eligible].notna().to_numpy().sum())
    dropped = sum(audit["drops"]["test"].values())
    assert len(test) + dropped == recorded


def test_option_heuristics_at_chance_synthetic(denoise):
    _, _, audit = read(denoise[0])
    for split in ("test", "all"):
        h = audit["heuristics"][split]
        for name in ("odd_precision", "out_of_order", "median_option", "most_frequent_letter", "longest_option"):
            assert abs(h[name]["difference_pp"]) < 3, (split, name, h[name])
    assert audit["heuristics"]["all"]["odd_precision"]["difference_pp"] == 0  # one format per feature, by construction
    assert audit["gold_letters"]["test"]["chi_square_p"] > 0.001  # drawn option sets: the gold at every letter equally often
    assert audit["targets_with_varying_option_count"] == []
    for attacker in ("surface", "surface + population"): assert audit["attack"]["overall"][attacker]["excess_pp"] < 2, audit["attack"]["overall"]


def test_option_heuristics_at_chance_icu(cli, icu, tmp_path):
    r = cli("questions", "--registry", icu, "--out", tmp_path / "q", *FAST)  # the default 1,000 test patients: the table has 200
    assert r.returncode == 0, r.stderr
    assert "only 100 of 1000 test patients requested" in r.stdout  # a request the registry cannot meet is said, never silent
    _, _, audit = read(tmp_path / "q")
    assert audit["shortfall"]["test_patients"] == {"requested": 1000, "built": 100, "why": "at most half of the 200 patients are held out"}
    assert audit["attack"]["failing"] == {}
    h = audit["heuristics"]["all"]
    for name in ("odd_precision", "out_of_order", "median_option", "most_frequent_letter"):
        assert abs(h[name]["difference_pp"]) < 3, (name, h[name])
    # 600 numeric questions: systolic pressures cluster above 100 mmHg and the grid reaches below, so the
    # 3-digit (longest) options are the plausible ones; the excess over that base rate is what must be ~0
    longest = h["longest_option"]
    assert abs(longest["difference_pp"]) < 3 + 2 * longest["se_pp"] and abs(longest["excess_over_base_rate_pp"]) < 1.5, longest


def test_derivation_closure_withheld_when_target(denoise, synthetic):
    from creason.shortcuts import derivation_closure
    train, test, audit = read(denoise[0])
    truth = json.loads((synthetic / "truth.json").read_text())
    d = open_registry(synthetic).dictionary
    closure = derivation_closure(truth["derived"])  # inputs, what is computed from the target, what is computed from its inputs
    check = audit["truth_check"]
    assert check["violations"] == [] and check["related_checked"] == check["related_withheld"] > 0
    questions = pd.concat([train, test])
    for key, rows in questions.groupby("target"):
        for related in set(closure.get(key, {})) & {f.key for f in d.features if f.shown}:
            assert rows["excluded_features"].map(lambda e: related in e).all(), (key, related)
            line = re.compile(rf"^{re.escape(d[related].display_name)}: ", re.M)
            assert not rows["prompt"].map(lambda p: bool(line.search(p[1]["content"]))).any(), (key, related)
    assert check["targets_checked"] >= 10


def test_unknown_outcomes_dropped_and_counted(predict, synthetic):
    train, test, audit = read(predict)
    registry = open_registry(synthetic)
    d = registry.dictionary
    data = registry.data.set_index(d.id_column)
    patients = test["record_id"].unique()
    outcomes = [f.key for f in d.features if f.role == "outcome"]
    unknown = int(data.loc[patients, outcomes].isna().to_numpy().sum())
    assert unknown > 0  # icu_los is missing for patients never admitted to the ICU
    assert audit["drops"]["test"]["unknown outcome"] == unknown
    assert len(test) == len(patients) * len(outcomes) - sum(audit["drops"]["test"].values())
    known = data[outcomes].notna()
    assert all(known.loc[r, t] for r, t in zip(test["record_id"], test["target"]))
    assert all(known.loc[r, t] for r, t in zip(train["record_id"], train["target"]))
    assert set(test["target"]) | set(audit["targets"]["dropped"]) == set(outcomes)
    for f in outcomes:  # outcomes are never shown, whatever the target
        assert not test["prompt"].map(lambda p: f"\n{d[f].display_name}: " in p[1]["content"] and
                                     f"{d[f].display_name}: [MASK]" not in p[1]["content"]).any()
    shock = test[test["target"] == "septic_shock"]
    assert shock["excluded_features"].map(lambda e: {"vasopressor", "lactate"} <= set(e)).all()
    binned = test[test["target_type"] == "binned"]
    assert len(binned) and audit["targets"]["eligible"]["hospital_los"]["bin_edges"]


def test_mimic_future_windows(cli, tmp_path):
    from creason.sources import write_mimic_fixture
    raw, folder = write_mimic_fixture(tmp_path / "raw", stays=40, seed=2), tmp_path / "mimic"
    assert cli("registry", "export", "mimic-sepsis", "--mimic-dir", raw, "--out", folder).returncode == 0
    out = build(cli, folder, tmp_path / "q", "--task", "predict", "--test-patients", 10, "--train-questions", 200, *FAST)
    train, test, audit = read(out)
    registry = open_registry(folder)
    times = registry.data.assign(id=registry.ids.astype(str)).groupby("id")["hours"]
    assert audit["split"]["unit"] == "subject_id"
    header = re.compile(r"^\[Block start \(hours after presumed sepsis onset\): (-?[\d.]+)\]$", re.M)
    for q in (train, test):
        for _, row in q.iterrows():
            text = row["prompt"][1]["content"]
            shown = [float(t) for t in header.findall(text)]
            if row["section"].startswith("Block start"):
                target_time, shown = shown[-1], shown[:-1]
                assert target_time - max(shown) >= 24 - 0.011  # strictly future: a day after the last shown block (times shown to 0.01 h)
            assert max(shown) + 4 <= 24 + 0.011 and max(times.get_group(row["record_id"])) >= 24  # landmark: shown blocks end by 24 h; the stay goes on
    mortality = test[test["target"] == "died_in_hospital"]
    assert len(mortality) and (mortality["section"] == "Outcomes").all()
    assert {"died_in_hospital", "HR"} <= set(test["target"])


def test_token_counts_and_budget(cli, synthetic, tmp_path):
    from creason.models import load_tokenizer
    out = build(cli, synthetic, tmp_path / "q", "--test-patients", 20, "--train-questions", 50, "--max-prompt-tokens", 700)
    train, test, audit = read(out)
    tok = load_tokenizer("smollm2-135m-instruct")
    for _, row in pd.concat([train.head(5), test.head(5)]).iterrows():
        ids = tok.apply_chat_template([dict(m) for m in row["prompt"]], tokenize=True, continue_final_message=True, return_dict=True)["input_ids"]
        assert len(ids) == row["n_prompt_tokens"]
    assert (test["n_prompt_tokens"] <= 700).all() and (train["n_prompt_tokens"] <= 700).all()
    over = audit["tokens"]["over_budget"]
    assert over > 0 and sum(audit["drops"][s].get("over the token budget", 0) for s in ("train", "test")) == over


@pytest.mark.parametrize("args, message", [
    (("--registry", "{tmp}/nowhere", "--out", "{tmp}/o"), "registry.parquet: not found"),
    (("--registry", "{syn}", "--out", "{tmp}/o", "--task", "classify"), "--task must be one of denoise, predict"),
    (("--registry", "{syn}", "--out", "{tmp}/o", "--balance", "labels"), "--balance must be one of none, gold"),
    (("--registry", "{syn}", "--out", "{tmp}/o", "--test-patient", "3"), "--test-patients"),
    (("--registry", "{syn}", "--out", "{tmp}/o", "--test-patients", "0"), "--test-patients must be at least 1"),
    (("--registry", "{syn}", "--out", "{tmp}/o", "--targets", "lactate,nonsense"), "--targets ['nonsense']"),
    (("--registry", "{syn}", "--out", "{tmp}/o", "--task", "predict", "--bin-edges", "hospital_los=a,b"), "--bin-edges"),
    (("--registry", "{syn}", "--out", "{tmp}/o", "--mi-fraction", "2"), "--mi-fraction must be in (0, 1]"),
    (("--registry", "{syn}", "--out", "{tmp}/o", "--tokenizer", "/no/such/model"), "no such model folder"),
])
def test_bad_input_exits_2(cli, synthetic, tmp_path, args, message):
    r = cli("questions", *[a.format(tmp=tmp_path, syn=synthetic) for a in args])
    assert r.returncode == 2, (r.stdout, r.stderr)
    assert message in r.stderr and "Traceback" not in r.stderr


def test_gold_balance_from_params_with_earlier_spellings(cli, synthetic, tmp_path):
    "A params file's questions: section gives the defaults; options override it; `--targets a,b` and `--bin-edges K=E,E` still read."
    params = tmp_path / "p.yaml"
    params.write_text("registry: {synthetic: {patients: 300}}\nmodel: tiny\nquestions: {balance: gold, train_questions: 400, test_patients: 50}\n")
    out = build(cli, synthetic, tmp_path / "q", "--params", params, "--targets", "dementia,sofa_cns,resistance", "--seed", 2, *FAST)
    train, test, audit = read(out)
    assert len(train) == 400 and sorted(test["target"].unique()) == ["dementia", "resistance", "sofa_cns"]
    manifest = json.loads((out / "manifest.json").read_text())["params"]
    assert manifest["balance"] == "gold" and manifest["test_patients"] == 50 and manifest["seed"] == 2
    balance = audit["balance"]
    for target in ("dementia", "sofa_cns", "resistance"):  # by the data, one class is half of each or more
        entry = balance["by_target"][target]
        counts, short = entry["realized"], entry["too_few"]  # a class with fewer training patients than its share gives all it has
        balanced = [n for c, n in counts.items() if c not in short]
        assert max(balanced) <= 1.3 * min(balanced) + 3 and all(counts[c] <= n for c, n in short.items()), (target, entry)
        population = test.loc[test["target"] == target, "gold_value"].value_counts(normalize=True).iloc[0]
        assert max(counts.values()) / sum(counts.values()) < population - 0.15, (target, counts, population)  # the commonest class is no longer most of it
    binned = build(cli, synthetic, tmp_path / "b", "--task", "predict", "--targets", "hospital_los", "--bin-edges", "hospital_los=7,14,28",
                   "--test-patients", 50, "--train-questions", 50, "--mi-fraction", "none", *FAST)
    assert read(binned)[2]["targets"]["eligible"]["hospital_los"]["bin_edges"] == [7.0, 14.0, 28.0]


def test_gold_balanced_view_of_a_test_table(denoise):
    from collections import Counter
    from creason.balance import gold_balanced, question_classes
    _, test, _ = read(denoise[0])
    view = gold_balanced(test, seed=1)
    assert view.equals(gold_balanced(test.sample(frac=1, random_state=0), seed=1).set_index("question_id").loc[view["question_id"]].reset_index()[view.columns])
    for target, rows in view.groupby("target"):
        counts = Counter(question_classes(rows))
        assert len(set(counts.values())) == 1, (target, counts)  # every kept class equally often
    assert view["target"].nunique() == test["target"].nunique()


def test_denoise_on_longitudinal_registry_is_refused(cli, tmp_path):
    from creason.sources import write_mimic_fixture
    raw, folder = write_mimic_fixture(tmp_path / "raw", stays=8, seed=0), tmp_path / "mimic"
    assert cli("registry", "export", "mimic-sepsis", "--mimic-dir", raw, "--out", folder).returncode == 0
    r = cli("questions", "--registry", folder, "--out", tmp_path / "o", *FAST)
    assert r.returncode == 2 and "use --task predict" in r.stderr


def test_bench_prints_one_json_line(cli):
    r = cli("bench", "questions", "--patients", 1000, "--seed", 1, "--train-questions", 300, "--test-patients", 50,
            "--tokenizer", "none", "--sklearn-budget", 0.5, "--json")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.strip().splitlines()
    assert len(lines) == 1
    result = json.loads(lines[0])
    assert {"build_s", "n_questions", "n_features", "mi_s", "mi_speedup_vs_sklearn_knn", "load_average_1min_before"} <= set(result)
    assert result["sklearn_extrapolated"] and result["sklearn_pairs_timed"] >= 3 and result["mi_speedup_vs_sklearn_knn"] > 1
    assert result["rebuild_identical"] is True and set(result["sha256"]) == set(FILES)
    assert {"headroom", "attack"} <= set(result["phases_s"])
