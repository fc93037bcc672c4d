"The synthetic sepsis registry: command line, determinism, dictionary, ground truth and derived values."
import json

import numpy as np
import pandas as pd
import pytest
import yaml

from creason.core import hash_file
from creason.registry import open_registry
from creason.synthetic import write_synthetic

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


def test_cli_writes_the_registry_folder(tmp_path, cli):
    r = cli("synth", "--patients", 200, "--seed", 3, "--out", tmp_path / "out")
    assert r.returncode == 0, r.stderr
    assert all((tmp_path / "out" / name).is_file() for name in FILES)
    assert "200 patients, 68 features in 9 sections" in r.stdout and r.stdout.count("\n") == 1


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
    keys = set(registry.dictionary.keys)
    assert all(cause in keys and effect in keys for cause, effect in truth["edges"])
    assert all([i, k] in truth["edges"] for k, inputs in truth["derived"].items() for i in inputs)
    assert len({tuple(e) for e in truth["edges"]}) == len(truth["edges"])


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
    identified = df["pathogen"].notna() & (df["pathogen"] != "None identified")
    assert ((df["culture_negative"] == "Yes") == (df["pathogen"] == "None identified")).all()
    assert ((df["mdr"] == "Yes") == (df["resistance"].notna() & (df["resistance"] != "Susceptible"))).all()
    assert (df["mdr"].isna() == df["resistance"].isna()).all() and not df.loc[~identified, "resistance"].notna().any()


def test_structural_missingness_is_coherent(registry):
    df = registry.data
    assert (df["pathogen"].isna() == (df["cultures_obtained"] == "No")).all()
    identified = df["pathogen"].notna() & (df["pathogen"] != "None identified")
    assert (df["empirical_therapy_appropriate"].notna() == identified).all()
    assert (df["icu_los"].isna() == (df["icu_admission"] == "No")).all()
    assert (df["norepinephrine_dose"].isna() == (df["vasopressor"] == "No")).all()
    assert (df["hospital_los"] >= df["icu_los"].fillna(0)).all()
    assert not df.loc[df["mechanical_ventilation"] == "Yes", "pf_ratio"].isna().any()
    died_late = (df["in_hospital_death"] == "Yes") & (df["hospital_los"] > 28)
    assert (df.loc[(df["in_hospital_death"] == "Yes") & ~died_late, "death_28d"] == "Yes").all()
    assert (df.loc[died_late, "death_28d"] == "No").all()


def test_values_are_rounded_to_the_dictionary(registry):
    for f in registry.dictionary.select(types=["numeric"]):
        v = registry.data[f.key].dropna().to_numpy()
        assert np.allclose(v, np.round(v, f.precision), rtol=0, atol=1e-9), f.key
