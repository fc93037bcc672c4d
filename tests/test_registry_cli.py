"""`creason registry check`: a broken registry is refused (exit code 2, a message naming the place, no traceback), and nothing
is changed silently. Most checks call the command in-process (`creason.cli.main`); a few run the console script."""
import io
import json
import re
import subprocess
import textwrap
from contextlib import redirect_stderr, redirect_stdout

import numpy as np
import pandas as pd
import pytest

from conftest import CREASON
from creason.cli import main
from creason.registry import load_registry

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


def check(*args) -> tuple:
    "`creason registry check ARGS` in-process: (exit code, stdout, stderr). An exception escaping `main` is a traceback: the test fails."
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err): code = main(["registry", "check", *map(str, args)])
    return code, out.getvalue(), err.getvalue()


def refused(code, err, *expected):
    assert code == 2, err
    for text in expected: assert text in err, f"{text!r} not in:\n{err}"


def test_good_registry_summary(tmp_path, cli):
    data, dic = write(tmp_path)
    r = cli("registry", "check", "--data", data, "--dictionary", dic)  # the console script, once
    assert r.returncode == 0, r.stderr
    assert "2 records" in r.stdout and "by section: Demographics 2, Hospital 1, Labs 1, Outcomes 1" in r.stdout


BROKEN = {
    "text in a numeric column": (HEADER + "P1,67,1,2024-01-02,high,1\n", None, ["registry.csv", "column 'lactate'", "line 2", "'high'", "not a number"]),
    "unknown code": (HEADER + "P1,67,3,2024-01-02,3.1,1\n", None, ["column 'sex'", "line 2", "value '3'", "unknown code", "1=Male"]),
    "duplicate patient id": (HEADER + GOOD_ROWS + "P2,70,1,2024-03-01,2.0,0\n", None, ["column 'patient_id'", "'P2'", "duplicate patient id", "lines 3, 4"]),
    "missing patient id": (HEADER + GOOD_ROWS + ",70,1,2024-03-01,2.0,0\n", None, ["column 'patient_id'", "line 4", "missing patient id"]),
    "blank patient id": (HEADER + GOOD_ROWS + "   ,70,1,2024-03-01,2.0,0\n", None, ["line 4", "value '   '", "blank patient id (only spaces)"]),
    "column not in the dictionary": (HEADER.replace("\n", ",ward\n") + "P1,67,1,2024-01-02,3.1,1,ICU\n", None, ["column 'ward'", "not described in the data dictionary"]),
    "dictionary feature missing from the file": (HEADER.replace(",lactate", "") + "P1,67,1,2024-01-02,1\n", None, ["column 'lactate'", "missing from the file"]),
    "empty table": (HEADER, None, ["registry.csv", "the table is empty"]),
    "all-missing feature": (HEADER + "P1,67,1,2024-01-02,,1\nP2,54,2,2024-02-03,NA,0\n", None, ["column 'lactate'", "every value is missing"]),
    "value outside the range": (HEADER + "P1,430,1,2024-01-02,3.1,1\n", None, ["column 'age'", "value '430'", "above the dictionary's max 120"]),
    "unparseable date": (HEADER + "P1,67,1,02/01/2024,3.1,1\n", None, ["column 'admitted'", "'02/01/2024'", "not a date/time in format '%Y-%m-%d'"]),
    "not UTF-8": ((HEADER + "P1,67,1,2024-01-02,3.1,1\n").encode() + "P2,54,2,2024-02-03,1.4,\xb0\n".encode("latin-1"), None, ["registry.csv", "not UTF-8", "line 3"]),
    "UTF-16": ((HEADER + GOOD_ROWS).encode("utf-16"), None, ["registry.csv", "UTF-16", "CSV UTF-8"]),
    "duplicate header": (HEADER.replace("died", "age") + GOOD_ROWS, None, ["registry.csv", "['age'] appear more than once in the header"]),
    "zero-byte file": ("", None, ["registry.csv", "the file is empty"]),
    "a row with too many fields": (HEADER + "P1,67,1,2024-01-02,3,1,1\n", None, ["the header (line 1) has 6 fields, but line 2 has 7"]),
    "an unclosed quote": (HEADER + 'P1,67,1,2024-01-02,"3.1,1\n', None, ["line 2: a quoted field that starts here is never closed"]),
    "dictionary: unknown type": (HEADER + GOOD_ROWS, DICTIONARY.replace("type: numeric, min", "type: number, min"), ["dictionary.yaml", "feature 'age'", "type 'number'"]),
    "dictionary: misspelt field": (HEADER + GOOD_ROWS, DICTIONARY.replace("unit: mmol/L", "unti: mmol/L"), ["dictionary.yaml", "feature 'lactate'", "unknown field(s) ['unti']"]),
    "dictionary: not YAML": (HEADER + GOOD_ROWS, "features: [ {key: a", ["dictionary.yaml", "cannot parse", "line 1, column 20"]),
}


@pytest.mark.parametrize("case", list(BROKEN))
def test_broken_registry_is_refused(tmp_path, case):
    csv, dictionary, expected = BROKEN[case]
    data, dic = write(tmp_path, csv, dictionary or DICTIONARY)
    refused(*check("--data", data, "--dictionary", dic)[::2], *expected)


def test_unreadable_parquet(tmp_path):
    data, dic = write(tmp_path)
    bad = tmp_path / "registry.parquet"
    bad.write_bytes(b"PAR1 but not really")
    refused(*check("--data", bad, "--dictionary", dic)[::2], "registry.parquet: cannot read the file")


def test_missing_file(tmp_path, cli):
    _, dic = write(tmp_path)
    r = cli("registry", "check", "--data", tmp_path / "nope.csv", "--dictionary", dic)
    assert r.returncode == 2 and "nope.csv: file not found" in r.stderr and "Traceback" not in r.stderr


def test_drop_policy_accounts_for_everything(tmp_path):
    csv = HEADER.replace("\n", ",ward\n") + "P1,67,1,2024-01-02,high,1,A\nP2,54,9,2024-02-03,1.4,0,B\n,40,1,2024-02-03,1.0,0,C\nP3,40,2,2024-02-05,NA,0,C\n"
    data, dic = write(tmp_path, csv)
    code, out, err = check("--data", data, "--dictionary", dic, "--policy", "drop", "--json")
    assert code == 0, err
    s = json.loads(out)["load"]
    assert (s["rows_in"], s["rows_kept"]) == (4, 3)
    assert s["dropped_rows"] == [{"row": 3, "line": 4, "id": None, "reason": "missing patient id"}]
    assert s["dropped_columns"] == {"ward": "not described in the data dictionary"}
    assert s["cleared_values"]["lactate"] == {"count": 1, "reasons": {"not a number": 1}}
    assert s["cleared_values"]["sex"] == {"count": 1, "reasons": {"unknown code": 1}}
    assert s["missing_spellings"] == {"lactate": {"NA": 1}}


def test_excel_and_parquet_load_the_same(tmp_path):
    data, dic = write(tmp_path)
    df = pd.read_csv(data, dtype=str)
    df.to_excel(tmp_path / "registry.xlsx", index=False)
    df.to_parquet(tmp_path / "registry.parquet", index=False)
    loaded = [load_registry(tmp_path / n, dic).data for n in ("registry.csv", "registry.xlsx", "registry.parquet")]
    for other in loaded[1:]: pd.testing.assert_frame_equal(loaded[0], other)


def test_dictionary_sheet_converts(tmp_path):
    sheet = pd.DataFrame({"key": ["patient_id", "age", "sex"], "name": ["Patient ID", "Age", "Sex"],
                          "type": ["identifier", "numeric", "binary"], "section": [None, "Demographics", "Demographics"],
                          "codes": [None, None, "1=Male; 2=Female"], "unit": [None, "years", None], "precision": [None, "1", None]})
    sheet.to_excel(tmp_path / "dd.xlsx", index=False)
    assert main(["registry", "dictionary", str(tmp_path / "dd.xlsx"), "--out", str(tmp_path / "dd.yaml")]) == 0
    (tmp_path / "r.csv").write_text("patient_id,age,sex\nA,50,2\n")
    code, out, err = check("--data", tmp_path / "r.csv", "--dictionary", tmp_path / "dd.yaml", "--json")
    assert code == 0, err
    sheet.loc[1, "precision"] = "one"
    sheet.to_excel(tmp_path / "dd.xlsx", index=False)
    code = main(["registry", "dictionary", str(tmp_path / "dd.xlsx"), "--out", str(tmp_path / "dd.yaml")])
    assert code == 2


# Each case below is a reproduction that once passed silently or crashed; B is `creason synth --patients 300 --seed 3`.

@pytest.fixture(scope="module")
def B(tmp_path_factory):
    folder = tmp_path_factory.mktemp("B")
    with redirect_stdout(io.StringIO()): assert main(["synth", "--patients", "300", "--seed", "3", "--out", str(folder)]) == 0
    pd.read_parquet(folder / "registry.parquet").to_csv(folder / "registry.csv", index=False)
    return folder


def edited_dictionary(B, tmp_path, old, new, count=1):
    text = (B / "dictionary.yaml").read_text(encoding="utf-8")
    assert old in text
    (tmp_path / "dictionary.yaml").write_text(text.replace(old, new, count), encoding="utf-8")
    return tmp_path / "dictionary.yaml"


def test_labels_that_spell_missing_are_kept_in_csv_and_excel(B, tmp_path):
    "Label 'None' (no liver disease) is a value where the dictionary says so, not a missing cell."
    pd.read_parquet(B / "registry.parquet").astype(object).to_excel(tmp_path / "registry.xlsx", index=False)
    parquet, csv, excel = (load_registry(f, B / "dictionary.yaml").data for f in (B / "registry.parquet", B / "registry.csv", tmp_path / "registry.xlsx"))
    assert (parquet["liver_disease"] == "None").sum() > 100
    pd.testing.assert_frame_equal(parquet, csv)
    pd.testing.assert_frame_equal(parquet, excel)


def test_yes_no_labels_must_be_quoted(B, tmp_path):
    dic = edited_dictionary(B, tmp_path, "    0: 'No'\n    1: 'Yes'\n", "    0: No\n    1: Yes\n")
    refused(*check("--data", B / "registry.csv", "--dictionary", dic)[::2],
            "'codes': the label of code 0 is the YAML boolean false", "write the word in quotes, e.g. 0: 'No'")


@pytest.mark.parametrize("policy", ["strict", "drop"])
def test_trailing_delimiter_on_every_line(B, tmp_path, policy):
    lines = (B / "registry.csv").read_text(encoding="utf-8").splitlines()
    (tmp_path / "r.csv").write_text("\n".join([lines[0]] + [l + "," for l in lines[1:]]) + "\n", encoding="utf-8")
    n = lines[0].count(",") + 1
    refused(*check("--data", tmp_path / "r.csv", "--dictionary", B / "dictionary.yaml", "--policy", policy)[::2],
            f"the header (line 1) has {n} fields, but line 2 has {n + 1}", "(300 lines in all)", "a comma at the end of each line?")


def test_truncated_last_line(B, tmp_path):
    text = (B / "registry.csv").read_text(encoding="utf-8").rstrip("\n")
    (tmp_path / "r.csv").write_text(text.rsplit(",", 3)[0], encoding="utf-8")
    n = text.split("\n")[0].count(",") + 1
    refused(*check("--data", tmp_path / "r.csv", "--dictionary", B / "dictionary.yaml", "--policy", "drop")[::2],
            f"the header (line 1) has {n} fields, but line 301 has {n - 3}", "was the file cut short?")


def test_duplicate_yaml_keys(B, tmp_path):
    dic = edited_dictionary(B, tmp_path, "    0: 'No'\n", "    0: 'No'\n    0: Zzz\n")
    refused(*check("--data", B / "registry.csv", "--dictionary", dic)[::2], "the key 0 appears twice in one mapping", "YAML would keep only the last")


def test_binary_labels_are_matched_exactly(B, tmp_path):
    dic = edited_dictionary(B, tmp_path, "    0: 'No'\n    1: 'Yes'\n", "    0: Nox\n    1: Yesx\n")
    refused(*check("--data", B / "registry.csv", "--dictionary", dic)[::2], "value 'No': unknown code (known codes: 0=Nox, 1=Yesx)")
    code, out, _ = check("--data", B / "registry.csv", "--dictionary", dic, "--policy", "drop", "--json")
    assert code == 0 and json.loads(out)["load"]["cleared_values"]["nursing_home"]["count"] == 300


MISTYPED = {
    "min: twenty": (("  min: 18\n", "  min: twenty\n"), "feature 'age': 'min' must be a number, got 'twenty'"),
    "section: [A, B]": (("  section: Demographics\n", "  section: [A, B]\n"), "feature 'age': 'section' must be text, got a list"),
    "derived_from: 5": (("  derived_from:\n  - hospital_id\n", "  derived_from: 5\n"), "'derived_from' must be a feature key or a list of keys, got the number 5"),
    "translations: [a, b]": (("sections:\n", "translations: [a, b]\nsections:\n"), "'translations' must be a mapping"),
    "sections: Demographics": (("sections:\n- Hospital and baseline\n", "sections: Demographics\nxsections:\n- Hospital and baseline\n"), None),
    "20,000 nested lists": (("  min: 18\n", "  min: " + "[" * 20_000 + "]" * 20_000 + "\n"), "nested too deeply"),
}


@pytest.mark.parametrize("case", list(MISTYPED))
def test_mistyped_dictionary_fields_are_named(B, tmp_path, case):
    (old, new), expected = MISTYPED[case]
    dic = edited_dictionary(B, tmp_path, old, new)
    code, _, err = check("--data", B / "registry.csv", "--dictionary", dic)
    refused(code, err, "dictionary.yaml", *([expected] if expected else []))
    assert len(err) < 600, f"{len(err)} characters"


def test_sections_must_be_a_list(B, tmp_path):
    text = re.sub(r"sections:\n(- .*\n)+", "sections: Demographics\n", (B / "dictionary.yaml").read_text(encoding="utf-8"), count=1)
    (tmp_path / "dictionary.yaml").write_text(text, encoding="utf-8")
    refused(*check("--data", B / "registry.csv", "--dictionary", tmp_path / "dictionary.yaml")[::2],
            "'sections' must be a list, e.g. [Demographics, Outcomes], got 'Demographics'")


def test_byte_order_mark_is_read_and_mentioned(B, tmp_path):
    (tmp_path / "r.csv").write_bytes(b"\xef\xbb\xbf" + (B / "registry.csv").read_bytes())
    code, out, err = check("--data", tmp_path / "r.csv", "--dictionary", B / "dictionary.yaml")
    assert code == 0, err
    assert "note: the file starts with a UTF-8 byte-order mark" in out and "300 kept" in out


def test_blank_patient_id_is_dropped_with_its_reason(B, tmp_path):
    text = (B / "registry.csv").read_text(encoding="utf-8").replace("\nS000001,", "\n   ,", 1)
    (tmp_path / "r.csv").write_text(text, encoding="utf-8")
    refused(*check("--data", tmp_path / "r.csv", "--dictionary", B / "dictionary.yaml")[::2], "line 2, value '   ': blank patient id (only spaces)")
    code, out, _ = check("--data", tmp_path / "r.csv", "--dictionary", B / "dictionary.yaml", "--policy", "drop", "--json")
    assert code == 0 and json.loads(out)["load"]["dropped_rows"] == [{"row": 1, "line": 2, "id": None, "reason": "blank patient id (only spaces)"}]


@pytest.mark.parametrize("cell, kind", [(np.array([1.0, 2.0]), "lists"), ({"a": 1}, "mappings"), (b"\x00\x01", "binary data (bytes)")])
def test_nested_parquet_column_is_named(B, tmp_path, cell, kind):
    df = pd.read_parquet(B / "registry.parquet")
    df["bmi"] = [cell] * len(df)
    df.to_parquet(tmp_path / "r.parquet", index=False)
    refused(*check("--data", tmp_path / "r.parquet", "--dictionary", B / "dictionary.yaml")[::2], f"column 'bmi': holds {kind}, not one value per cell")
    code, out, _ = check("--data", tmp_path / "r.parquet", "--dictionary", B / "dictionary.yaml", "--policy", "drop", "--json")
    assert code == 0 and json.loads(out)["load"]["dropped_columns"] == {"bmi": f"holds {kind}, not one value per cell"}


def test_long_cells_are_cut_in_messages(B, tmp_path):
    lines = (B / "registry.csv").read_text(encoding="utf-8").split("\n")
    row = lines[1].split(","); row[7] = "x" * 100_000; lines[1] = ",".join(row)
    (tmp_path / "r.csv").write_text("\n".join(lines), encoding="utf-8")
    code, _, err = check("--data", tmp_path / "r.csv", "--dictionary", B / "dictionary.yaml")
    refused(code, err, "column 'bmi', line 2, id 'S000001', value 'xxxx", "… (100,000 characters): not a number")
    assert len(err) < 600


def test_output_into_a_closed_pipe_ends_quietly(B):
    "`creason registry check ... | head`: the reader is gone before the summary is written."
    p = subprocess.Popen([CREASON, "registry", "check", "--data", str(B / "registry.csv"), "--dictionary", str(B / "dictionary.yaml"), "--json"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    p.stdout.close()
    err = p.stderr.read().decode()
    assert p.wait(timeout=600) == 0 and err == "", err


SURVIVAL = textwrap.dedent("""\
    id: pid
    features:
      - {key: pid, type: identifier}
      - {key: age, name: Age, section: Demographics, type: numeric}
      - {key: status, name: Status, section: Outcomes, type: categorical, role: outcome, codes: {0: Alive, 1: Transplant, 2: Dead}}
      - {key: days, name: Follow-up, unit: days, section: Outcomes, type: numeric, role: outcome, event: status, event_value: 2,
         horizons: [{within: 1000, key: death_1000d, name: Death within 1000 days}]}
    """)


def test_survival_times_are_censored_and_counted(tmp_path):
    data, dic = write(tmp_path, "pid,age,status,days\nA,50,2,300\nB,60,0,400\nC,70,1,1200\nD,55,0,1500\nE,65,2,2000\n", SURVIVAL)
    code, out, err = check("--data", data, "--dictionary", dic, "--json")
    assert code == 0, err
    load = json.loads(out)["load"]
    assert load["time_to_event"]["days"] == {"event": "status", "event_value": "Dead", "events": 2, "censored": 3, "event not recorded": 0}
    assert load["derived"]["death_1000d"] == {"from": ["days", "status"], "within": 1000, "Yes": 1, "No": 3,
                                             "unknown": {"follow-up ended before 1000 without the event": 1}}
    code, out, _ = check("--data", data, "--dictionary", dic)
    assert "time to event days: 2 with status = Dead; 3 censored" in out
    bad = SURVIVAL.replace("event_value: 2", "event_value: Deceased")
    refused(*check("--data", data, "--dictionary", write(tmp_path, dictionary=bad, name="x.csv")[1])[::2],
            "feature 'days': event_value 'Deceased' is not a code or label of 'status'")
