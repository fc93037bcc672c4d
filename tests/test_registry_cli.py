"Broken registries are refused from the command line: exit code 2, a message naming the place, no traceback."
import textwrap

import pandas as pd
import pytest

DICTIONARY = textwrap.dedent("""\
    name: clinic
    id: patient_id
    features:
      - {key: patient_id, name: Patient ID, type: identifier}
      - {key: age, name: Age, unit: years, section: Demographics, type: numeric, min: 18, max: 120}
      - {key: sex, name: Sex, section: Demographics, type: binary, codes: {1: Male, 2: Female}}
      - {key: admitted, name: Admission date, section: Hospital, type: datetime, role: context, format: '%Y-%m-%d'}
      - {key: lactate, name: Lactate, unit: mmol/L, section: Labs, type: numeric}
      - {key: died, name: Died in hospital, section: Outcomes, type: binary, role: outcome}
    """)
HEADER = "patient_id,age,sex,admitted,lactate,died\n"
GOOD_ROWS = "P1,67,1,2024-01-02,3.1,1\nP2,54,2,2024-02-03,1.4,0\n"


def write(tmp_path, csv=HEADER + GOOD_ROWS, dictionary=DICTIONARY, name="registry.csv"):
    data, dic = tmp_path / name, tmp_path / "dictionary.yaml"
    if isinstance(csv, bytes): data.write_bytes(csv)
    else: data.write_text(csv, encoding="utf-8")
    dic.write_text(dictionary, encoding="utf-8")
    return data, dic


def test_good_registry_summary(tmp_path, cli):
    data, dic = write(tmp_path)
    r = cli("registry", "check", "--data", data, "--dictionary", dic)
    assert r.returncode == 0, r.stderr
    assert "2 records" in r.stdout and "by section: Demographics 2, Hospital 1, Labs 1, Outcomes 1" in r.stdout


BROKEN = {
    "text in a numeric column": (HEADER + "P1,67,1,2024-01-02,high,1\n", None, ["registry.csv", "column 'lactate'", "row 1", "'high'", "not a number"]),
    "unknown code": (HEADER + "P1,67,3,2024-01-02,3.1,1\n", None, ["column 'sex'", "row 1", "value '3'", "unknown code", "1=Male"]),
    "duplicate patient id": (HEADER + GOOD_ROWS + "P2,70,1,2024-03-01,2.0,0\n", None, ["column 'patient_id'", "'P2'", "duplicate patient id", "rows 2, 3"]),
    "missing patient id": (HEADER + GOOD_ROWS + ",70,1,2024-03-01,2.0,0\n", None, ["column 'patient_id'", "row 3", "missing patient id"]),
    "column not in the dictionary": (HEADER.replace("\n", ",ward\n") + "P1,67,1,2024-01-02,3.1,1,ICU\n", None, ["column 'ward'", "not described in the data dictionary"]),
    "dictionary feature missing from the file": (HEADER.replace(",lactate", "") + "P1,67,1,2024-01-02,1\n", None, ["column 'lactate'", "missing from the file"]),
    "empty table": (HEADER, None, ["registry.csv", "the table is empty"]),
    "all-missing feature": (HEADER + "P1,67,1,2024-01-02,,1\nP2,54,2,2024-02-03,NA,0\n", None, ["column 'lactate'", "every value is missing"]),
    "value outside the range": (HEADER + "P1,430,1,2024-01-02,3.1,1\n", None, ["column 'age'", "value '430'", "above the dictionary's max 120"]),
    "unparseable date": (HEADER + "P1,67,1,02/01/2024,3.1,1\n", None, ["column 'admitted'", "'02/01/2024'", "not a date/time in format '%Y-%m-%d'"]),
    "not UTF-8": ((HEADER + "P1,67,1,2024-01-02,3.1,1\n").encode() + "P2,54,2,2024-02-03,1.4,\xb0\n".encode("latin-1"), None, ["registry.csv", "not UTF-8"]),
    "duplicate header": (HEADER.replace("died", "age") + GOOD_ROWS, None, ["registry.csv", "['age'] appear more than once in the header"]),
    "zero-byte file": ("", None, ["registry.csv", "the file is empty"]),
    "dictionary: unknown type": (HEADER + GOOD_ROWS, DICTIONARY.replace("type: numeric, min", "type: number, min"), ["dictionary.yaml", "feature 'age'", "type 'number'"]),
    "dictionary: misspelt field": (HEADER + GOOD_ROWS, DICTIONARY.replace("unit: mmol/L", "unti: mmol/L"), ["dictionary.yaml", "feature 'lactate'", "unknown field(s) ['unti']"]),
    "dictionary: not YAML": (HEADER + GOOD_ROWS, "features: [ {key: a", ["dictionary.yaml", "cannot parse"]),
}


@pytest.mark.parametrize("case", list(BROKEN))
def test_broken_registry_is_refused(tmp_path, cli, case):
    csv, dictionary, expected = BROKEN[case]
    data, dic = write(tmp_path, csv, dictionary or DICTIONARY)
    r = cli("registry", "check", "--data", data, "--dictionary", dic)
    assert r.returncode == 2, (r.stdout, r.stderr)
    assert "Traceback" not in r.stderr
    for text in expected: assert text in r.stderr, f"{text!r} not in:\n{r.stderr}"


def test_unreadable_parquet(tmp_path, cli):
    data, dic = write(tmp_path)
    bad = tmp_path / "registry.parquet"
    bad.write_bytes(b"PAR1 but not really")
    r = cli("registry", "check", "--data", bad, "--dictionary", dic)
    assert r.returncode == 2 and "registry.parquet: cannot read the file" in r.stderr and "Traceback" not in r.stderr


def test_missing_file(tmp_path, cli):
    _, dic = write(tmp_path)
    r = cli("registry", "check", "--data", tmp_path / "nope.csv", "--dictionary", dic)
    assert r.returncode == 2 and "nope.csv: file not found" in r.stderr


def test_drop_policy_accounts_for_everything(tmp_path, cli):
    csv = HEADER.replace("\n", ",ward\n") + "P1,67,1,2024-01-02,high,1,A\nP2,54,9,2024-02-03,1.4,0,B\n,40,1,2024-02-03,1.0,0,C\nP3,40,2,2024-02-05,2.0,0,C\n"
    data, dic = write(tmp_path, csv)
    r = cli("registry", "check", "--data", data, "--dictionary", dic, "--policy", "drop", "--json")
    assert r.returncode == 0, r.stderr
    import json
    s = json.loads(r.stdout)["load"]
    assert (s["rows_in"], s["rows_kept"]) == (4, 3)
    assert s["dropped_rows"] == [{"row": 3, "id": None, "reason": "missing patient id"}]
    assert s["dropped_columns"] == {"ward": "not described in the data dictionary"}
    assert s["cleared_values"]["lactate"] == {"count": 1, "reasons": {"not a number": 1}}
    assert s["cleared_values"]["sex"] == {"count": 1, "reasons": {"unknown code": 1}}


def test_excel_and_parquet_load_the_same(tmp_path, cli):
    data, dic = write(tmp_path)
    df = pd.read_csv(data, dtype=str)
    df.to_excel(tmp_path / "registry.xlsx", index=False)
    df.to_parquet(tmp_path / "registry.parquet", index=False)
    outs = [cli("registry", "check", "--data", tmp_path / n, "--dictionary", dic, "--json") for n in ("registry.csv", "registry.xlsx", "registry.parquet")]
    assert all(o.returncode == 0 for o in outs), [o.stderr for o in outs]
    import json
    counts = [{k: v for k, v in json.loads(o.stdout).items() if k not in ("load", "name")} for o in outs]
    assert counts[0] == counts[1] == counts[2]


def test_dictionary_sheet_converts(tmp_path, cli):
    sheet = pd.DataFrame({"key": ["patient_id", "age", "sex"], "name": ["Patient ID", "Age", "Sex"],
                          "type": ["identifier", "numeric", "binary"], "section": [None, "Demographics", "Demographics"],
                          "codes": [None, None, "1=Male; 2=Female"], "unit": [None, "years", None]})
    sheet.to_excel(tmp_path / "dd.xlsx", index=False)
    r = cli("registry", "dictionary", tmp_path / "dd.xlsx", "--out", tmp_path / "dd.yaml")
    assert r.returncode == 0, r.stderr
    (tmp_path / "r.csv").write_text("patient_id,age,sex\nA,50,2\n")
    r = cli("registry", "check", "--data", tmp_path / "r.csv", "--dictionary", tmp_path / "dd.yaml", "--json")
    assert r.returncode == 0, r.stderr
