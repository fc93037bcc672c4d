"The synthetic sepsis registry: command line, determinism, dictionary, ground truth, derived values and marginals."
import json
from collections import deque

import numpy as np
import pandas as pd
import pytest
import yaml

from creason.core import hash_file
from creason.registry import open_registry
from creason.synthetic import generate, marginals, write_synthetic

FILES = ("registry.parquet", "dictionary.yaml", "truth.json")
PATIENTS, SEED = 400, 11


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    "A small registry folder written once for the module."
    return write_synthetic(tmp_path_factory.mktemp("synthetic"), PATIENTS, SEED)


@pytest.fixture(scope="module")
def registry(folder):
    "The written registry, reloaded under strict validation."
    return open_registry(folder, policy="strict")


@pytest.fixture(scope="module")
def truth(folder):
    return json.loads((folder / "truth.json").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def large():
    "A registry large enough for marginals and held-out models (generated in memory)."
    return generate(5000, 3)[0]


def test_cli_writes_the_registry_folder(tmp_path, cli):
    r = cli("synth", "--patients", 200, "--seed", 3, "--out", tmp_path / "out")
    assert r.returncode == 0, r.stderr
    assert all((tmp_path / "out" / name).is_file() for name in FILES)
    assert "200 patients, 73 features in 9 sections" in r.stdout and "s CPU, load average" in r.stdout
    assert r.stdout.count("\n") == 1


def test_cli_refuses_too_few_patients(tmp_path, cli):
    r = cli("synth", "--patients", 5, "--out", tmp_path)
    assert r.returncode == 2 and "at least 100" in r.stderr and "Traceback" not in r.stderr


def test_same_seed_gives_identical_bytes(tmp_path, folder):
    again = write_synthetic(tmp_path / "again", PATIENTS, SEED)
    assert [hash_file(folder / f) for f in FILES] == [hash_file(again / f) for f in FILES]
    other = write_synthetic(tmp_path / "other", PATIENTS, SEED + 1)
    assert hash_file(other / "registry.parquet") != hash_file(folder / "registry.parquet")


def test_dictionary_counts(folder):
    features = yaml.safe_load((folder / "dictionary.yaml").read_text(encoding="utf-8"))["features"]
    shown = [f for f in features if f["type"] != "identifier"]
    assert len(shown) >= 50 and len({f["section"] for f in shown}) >= 8
    outcomes = {f["key"] for f in features if f.get("role") == "outcome"}
    assert {"septic_shock", "icu_admission", "icu_los", "hospital_los", "in_hospital_death", "death_28d"} == outcomes
    numeric = [f for f in features if f["type"] == "numeric"]
    assert all("precision" in f and "min" in f and "max" in f for f in numeric)


def test_registry_passes_strict_validation(registry):
    assert len(registry) == PATIENTS and registry.report.dropped_rows == [] and registry.report.cleared_values == {}
    assert registry.report.dropped_columns == {}


def test_truth_matches_the_dictionary(registry, truth):
    declared = {f.key: list(f.derived_from) for f in registry.dictionary.features if f.derived_from}
    assert truth["derived"] == declared
    keys, latent = set(registry.dictionary.keys), set(truth["latent"])
    assert latent and not latent & keys and not latent & set(registry.data.columns)  # latent states never reach the record
    assert all(cause in keys | latent and effect in keys | latent for cause, effect in truth["edges"])
    assert all(any(e[1] == state for e in truth["edges"]) and any(e[0] == state for e in truth["edges"]) for state in latent)
    assert all([i, k] in truth["edges"] for k, inputs in truth["derived"].items() for i in inputs)
    assert not any(i in latent for inputs in truth["derived"].values() for i in inputs)  # definitions read recorded values
    assert len({tuple(e) for e in truth["edges"]}) == len(truth["edges"])
    assert set(truth["missingness"]) <= keys


def test_truth_is_acyclic(truth):
    parents = {}
    for cause, effect in truth["edges"]: parents.setdefault(effect, set()).add(cause)
    done, visiting = set(), set()
    def visit(node):
        assert node not in visiting, f"cycle through {node}"
        if node in done: return
        visiting.add(node)
        for p in parents.get(node, ()): visit(p)
        visiting.discard(node); done.add(node)
    for node in list(parents): visit(node)


def _points(values, thresholds, higher_is_worse=True):
    "Reference SOFA points, written independently of the generator (missing input counts as normal)."
    v = values.to_numpy(dtype="float64")
    out = np.zeros(len(v), dtype=int)
    for t in thresholds: out += np.where(np.isnan(v), False, v >= t if higher_is_worse else v < t)
    return out


def test_derived_values_are_the_stated_functions(registry):
    df = registry.data
    sofa = {k: df[k].astype(int).to_numpy() for k in ("sofa_respiration", "sofa_coagulation", "sofa_liver",
                                                      "sofa_cardiovascular", "sofa_cns", "sofa_renal")}
    assert (df["sofa_total"].to_numpy() == sum(sofa.values())).all()
    assert (df["sofa_total"] >= 2).all()  # Sepsis-3 enrolment
    ventilated = (df["mechanical_ventilation"] == "Yes").to_numpy()
    resp = _points(df["pf_ratio"], (400, 300, 200, 100), higher_is_worse=False)
    assert (sofa["sofa_respiration"] == np.where(ventilated, resp, np.minimum(resp, 2))).all()
    assert (sofa["sofa_coagulation"] == _points(df["platelets"], (150, 100, 50, 20), higher_is_worse=False)).all()
    assert (sofa["sofa_liver"] == _points(df["bilirubin"], (1.2, 2.0, 6.0, 12.0))).all()
    assert (sofa["sofa_cns"] == _points(df["gcs"], (15, 13, 10, 6), higher_is_worse=False)).all()
    assert (sofa["sofa_renal"] == _points(df["creatinine"], (1.2, 2.0, 3.5, 5.0))).all()
    vaso, dose = (df["vasopressor"] == "Yes").to_numpy(), df["norepinephrine_dose"].fillna(0).to_numpy()
    assert (vaso == df["norepinephrine_dose"].notna().to_numpy()).all()  # the flag is "a dose was recorded"
    cardio = np.where(vaso, np.where(dose > 0.1, 4, 3), np.where(df["map"] < 70, 1, 0))
    assert (sofa["sofa_cardiovascular"] == cardio).all()
    qsofa = (df["respiratory_rate"] >= 22).astype(int) + (df["sbp"] <= 100).astype(int) + (df["gcs"] < 15).astype(int)
    assert (df["qsofa"].astype(int) == qsofa).all()
    assert ((df["septic_shock"] == "Yes") == (vaso & (df["lactate"].fillna(0) > 2).to_numpy())).all()
    assert not df.loc[vaso, "lactate"].isna().any()  # shock is never undetermined


def test_charlson_index_and_lookups(registry):
    df = registry.data
    weights = {"myocardial_infarction": {"Yes": 1}, "heart_failure": {"Yes": 1}, "cerebrovascular_disease": {"Yes": 1},
               "dementia": {"Yes": 1}, "chronic_lung_disease": {"Yes": 1}, "chronic_kidney_disease": {"Yes": 2},
               "diabetes": {"Uncomplicated": 1, "With end-organ damage": 2}, "liver_disease": {"Mild": 1, "Moderate or severe": 3},
               "solid_tumor": {"Localized": 2, "Metastatic": 6}, "hematologic_malignancy": {"Yes": 2}}
    charlson = sum(df[k].astype(str).map(w).fillna(0) for k, w in weights.items())
    assert (charlson == df["charlson_index"]).all()
    assert df.groupby("hospital_id", observed=True)[["hospital_type", "region"]].nunique().max().max() == 1
    assert ((df["culture_negative"] == "Yes") == (df["pathogen"] == "None identified")).all()
    assert ((df["mdr"] == "Yes") == (df["resistance"] != "No resistant organism")).all()
    assert (df.loc[df["pathogen"] == "None identified", "resistance"] == "No resistant organism").all()


def test_record_is_coherent(registry):
    df = registry.data
    microbiology = ["pathogen", "culture_negative", "bacteremia", "resistance", "mdr", "empirical_therapy_appropriate"]
    assert not df[microbiology].isna().any().any()  # every enrolled patient was cultured: nothing structurally absent
    assert (df.loc[df["bacteremia"] == "Yes", "pathogen"] != "None identified").all()  # a positive blood culture names it
    assert (df["icu_los"].isna() == (df["icu_admission"] == "No")).all()
    assert (df["hospital_los"] >= df["icu_los"].fillna(0)).all()
    assert not df.loc[df["mechanical_ventilation"] == "Yes", "pf_ratio"].isna().any()
    assert not df.loc[df["map"] < 65, "lactate"].isna().any()  # lactate whenever shock is suspected
    died_late = (df["in_hospital_death"] == "Yes") & (df["hospital_los"] > 28)
    assert (df.loc[(df["in_hospital_death"] == "Yes") & ~died_late, "death_28d"] == "Yes").all()
    assert (df.loc[died_late, "death_28d"] == "No").all()


def test_values_are_rounded_to_the_dictionary(registry):
    for f in registry.dictionary.select(types=["numeric"]):
        v = registry.data[f.key].dropna().to_numpy()
        assert np.allclose(v, np.round(v, f.precision), rtol=0, atol=1e-9), f.key


def _related(derived: dict) -> dict:
    "Reference derivation closure, written independently of the question builder: inputs and outputs transitively, and siblings."
    inputs = {k: set(v) for k, v in derived.items()}
    for i in set().union(*inputs.values()): inputs.setdefault(i, set())
    outputs = {k: {o for o, ins in inputs.items() if k in ins} for k in inputs}
    def reach(starts, edges):
        seen, todo = set(), deque(starts)
        while todo:
            k = todo.popleft()
            if k not in seen: seen.add(k); todo.extend(edges[k])
        return seen
    out = {}
    for k in inputs:
        ancestors = reach(inputs[k], inputs)
        out[k] = ancestors | reach(outputs[k], outputs) | reach([o for a in ancestors for o in outputs[a]], outputs)
    return out


def _indicators(df: pd.DataFrame, key: str) -> dict:
    "Binary facts about one column that another could give away (missing; each value of a coded or few-valued one), up to complement."
    facts = {"missing": df[key].isna().to_numpy()}
    if isinstance(df[key].dtype, pd.CategoricalDtype) or df[key].nunique() <= 30:
        facts.update({f"= {v}": (df[key] == v).to_numpy() for v in df[key].dropna().unique()})
    return {name: f ^ f[0] for name, f in facts.items() if 0 < f.sum() < len(f)}


def test_every_definitional_tie_is_declared(large, truth):
    "Whenever one feature's missingness or one of its values coincides exactly with a fact about another, the dictionary relates them."
    related = _related(truth["derived"])
    owners = {}
    for f in large.dictionary.features:
        if f.role == "identifier": continue
        for name, fact in _indicators(large.data, f.key).items(): owners.setdefault(fact.tobytes(), []).append((f.key, name))
    undeclared = [(a, b) for group in owners.values() for a in group for b in group
                  if a[0] < b[0] and b[0] not in related.get(a[0], ())]
    assert not undeclared, f"undeclared definitional relations: {undeclared[:5]}"
    assert any({"vasopressor", "norepinephrine_dose"} <= {k for k, _ in group} for group in owners.values())  # ties are seen


def _codes(values: pd.Series) -> np.ndarray:
    "Integer codes of a column's values, missing included as a value of its own."
    return pd.factorize(values.astype(object).where(values.notna(), "<missing>"), sort=True)[0].astype("int64")


def test_no_coded_feature_is_an_undeclared_function_of_another(large, truth):
    df = large.data
    related = _related(truth["derived"])
    coded = [f.key for f in large.dictionary.features if f.type in ("binary", "categorical", "ordinal")]
    few_values = [f.key for f in large.dictionary.features if f.role != "identifier" and df[f.key].nunique() <= 30]
    codes = {k: _codes(df[k]) for k in set(coded) | set(few_values)}
    for target in coded:
        for b in few_values:
            if b == target or b in related.get(target, ()): continue
            pairs = len(np.unique(codes[b] * 1000 + codes[target]))
            assert pairs > len(np.unique(codes[b])), f"{target} is a function of {b} but not declared derived from it"


def test_published_marginals_hold(large):
    table = marginals(large).dropna(subset=["target"])
    assert len(table) >= 10
    off = table[(table["generated"] - table["target"]).abs() > 4]
    assert off.empty, off.to_string()


def test_masked_values_are_predictable_but_not_given_away(large, truth):
    "Gradient boosting on the shown features outside a target's derivation closure beats the prior, far from perfectly."
    from sklearn.ensemble import HistGradientBoostingClassifier
    from threadpoolctl import threadpool_limits
    df, related = large.data, _related(truth["derived"])
    test = np.random.default_rng(0).random(len(df)) < 0.3
    for target in ("lactate", "vasopressor", "sofa_renal"):
        shown = [f.key for f in large.dictionary.features if f.shown and f.key != target and f.key not in related.get(target, ())]
        rows = df[target].notna().to_numpy()
        if target == "lactate":
            v = df[target].to_numpy("float64")
            y = np.searchsorted(np.nanquantile(v[rows & ~test], [0.2, 0.4, 0.6, 0.8]), v, side="right")
        else: y = df[target].cat.codes.to_numpy()
        train, held = rows & ~test, rows & test
        model = HistGradientBoostingClassifier(max_iter=25, categorical_features="from_dtype", random_state=0)
        with threadpool_limits(1): model.fit(df.loc[train, shown], y[train])
        prior = float((y[held] == np.bincount(y[train]).argmax()).mean())
        accuracy = float(model.score(df.loc[held, shown], y[held]))
        assert prior + 0.1 < accuracy < 0.95, (target, prior, accuracy)
