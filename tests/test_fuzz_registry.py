"""Property-based fuzz suite of `creason registry check` (Hypothesis).

Generated registries (tests/strategies_registry.py) are mutated — cells, types, columns, ids, encodings, delimiters,
truncation, YAML structure — and checked in-process (`creason.cli.main`; one test runs the console script):
* the exit code is 0 or 2 and nothing escapes as a traceback;
* where the documented rules decide the outcome, loading does exactly that: the same exit code, every kept value as the
  rules read it, every cleared cell and missing-value spelling counted, rows in = rows kept + rows dropped;
* a valid registry loads identical values from CSV, Parquet and Excel, and again after its typed values are written back.
The `ci` profile (default) runs a few hundred cases; `--hypothesis-profile thorough` thousands. With CREASON_FUZZ_REPORT=FILE
the exit codes, tracebacks, silent changes and slowest cases are written to FILE as JSON."""
import io
import json
import os
import subprocess
import tempfile
import time
from collections import Counter
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

import pandas as pd
import pytest

pytest.importorskip("hypothesis")
from hypothesis import assume, given, note, settings
from hypothesis import strategies as st

import strategies_registry as S
from conftest import CREASON
from creason.cli import main
from creason.registry import load_registry, open_registry

RUNS = []  # one record per command run: test, format, policy, exit code, CPU seconds, silent changes found, mutations


@pytest.fixture(scope="module", autouse=True)
def fuzz_report():
    yield
    path = os.environ.get("CREASON_FUZZ_REPORT")
    if not path or not RUNS: return
    slowest = sorted(RUNS, key=lambda r: -r["cpu_s"])[:5]
    summary = {"runs": len(RUNS), "exit_codes": dict(Counter(str(r["code"]) for r in RUNS)),
               "tracebacks": sum(r["code"] not in (0, 2) for r in RUNS), "silent_changes": sum(r["silent"] for r in RUNS),
               "by_test": dict(Counter(r["test"] for r in RUNS)), "by_format": dict(Counter(r["format"] for r in RUNS)),
               "cpu_s_total": round(sum(r["cpu_s"] for r in RUNS), 2), "slowest": slowest, "loadavg": os.getloadavg()}
    Path(path).write_text(json.dumps(summary, indent=1, default=str), encoding="utf-8")


def check(test: str, data, dictionary, policy: str, fmt: str, mutations=()) -> tuple:
    "`creason registry check` in-process; an exception escaping `main` is a traceback and fails the test. Returns (code, stdout, stderr)."
    out, err = io.StringIO(), io.StringIO()
    start = time.process_time()
    try:
        with redirect_stdout(out), redirect_stderr(err):
            code = main(["registry", "check", "--data", str(data), "--dictionary", str(dictionary), "--policy", policy, "--json"])
    except BaseException:
        RUNS.append({"test": test, "format": fmt, "policy": policy, "code": "traceback", "cpu_s": 0, "silent": 0, "mutations": list(mutations)})
        raise
    RUNS.append({"test": test, "format": fmt, "policy": policy, "code": code, "cpu_s": round(time.process_time() - start, 3),
                 "silent": 0, "mutations": list(mutations)})
    note(f"exit {code}; stderr: {err.getvalue()[:2000]}")
    assert code in (0, 2) and "Traceback" not in err.getvalue()
    return code, out.getvalue(), err.getvalue()


def silent(discrepancies: list) -> list:
    "Record the discrepancies between a load and the rules (each one a value changed or lost without a counted reason)."
    RUNS[-1]["silent"] = len(discrepancies)
    return discrepancies


def plain(v):
    return None if v is None or (not isinstance(v, (list, dict)) and pd.isna(v)) else v


def differences(registry, e: S.Expected) -> list:
    "Where a loaded registry differs from what the rules say (empty: none)."
    data, report, found = registry.data, registry.report, []
    ids = [plain(v) for v in registry.ids]
    if ids != e.ids: found.append(f"kept ids {ids[:10]} != expected {e.ids[:10]}")
    extra = set(data.columns) - set(e.values) - {registry.id_column}
    missing = set(e.values) - set(data.columns)
    if extra or missing: found.append(f"columns: unexpected {sorted(extra)}, missing {sorted(missing)}")
    for key, expected in e.values.items():
        if key in data and [plain(v) for v in data[key]] != expected and ids == e.ids:
            found.append(f"column {key!r}: {[plain(v) for v in data[key]][:8]} != {expected[:8]}")
    cleared = {k: c["count"] for k, c in report.cleared_values.items()}
    if cleared != e.cleared: found.append(f"cleared {cleared} != expected {e.cleared}")
    if report.missing_spellings != e.spellings: found.append(f"spellings {report.missing_spellings} != expected {e.spellings}")
    if report.rows_in != report.rows_kept + len(report.dropped_rows) or len(report.dropped_rows) != e.dropped_rows:
        found.append(f"rows: {report.rows_in} in, {report.rows_kept} kept, {len(report.dropped_rows)} dropped (expected {e.dropped_rows})")
    return found


CSV_OPTIONS = st.fixed_dictionaries({"sep": st.sampled_from([",", ";", "|"]), "bom": st.booleans(), "crlf": st.booleans()})


@pytest.mark.parametrize("fmt", ["csv", "tsv", "parquet", "xlsx"])
@settings(max_examples=max(10, settings.default.max_examples // 2))
@given(case=S.cases().flatmap(S.mutated), options=CSV_OPTIONS, policy=st.sampled_from(["strict", "drop"]))
def test_loading_follows_the_rules(fmt, case, options, policy):
    "Mutated cells, ids and columns: the exit code, kept values and counts are exactly what the documented rules say."
    if len(set(case.header)) < len(case.header) or len(case.header) == 1: fmt = "csv"  # a table needs distinct names
    if len(case.header) == 1: options = {**options, "sep": ","}
    note(f"{fmt} {options} {policy}: {case.mutations}\n{case.doc}\n{case.header}\n{case.rows}")
    with tempfile.TemporaryDirectory() as folder:
        data, dictionary = S.write(case, Path(folder), fmt, **options)
        e = S.expect(case, policy)
        code, out, err = check("rules", data, dictionary, policy, fmt, case.mutations)
        assert code == e.code, f"exit {code}, the rules say {e.code} ({e.reason}): {err[:1500]}"
        if code == 0:
            registry = load_registry(data, dictionary, policy=policy)
            assert not silent(differences(registry, e)), differences(registry, e)
            if options["bom"] and fmt == "csv": assert "byte-order mark" in out


FILE_DAMAGE = ["truncate", "truncate", "flip byte", "insert bytes", "delete line", "trailing delimiter", "latin-1", "utf-16",
               "blank lines", "cr line endings", "nul byte", "header only", "duplicate header line"]


def damaged(raw: bytes, kind: str, draw) -> bytes:
    lines = raw.split(b"\n")
    if kind == "truncate": return raw[: draw(st.integers(1, len(raw)))]
    if kind == "flip byte":
        i = draw(st.integers(0, len(raw) - 1)); return raw[:i] + bytes([raw[i] ^ draw(st.integers(1, 255))]) + raw[i + 1:]
    if kind == "insert bytes":
        i = draw(st.integers(0, len(raw))); return raw[:i] + draw(st.binary(min_size=1, max_size=8)) + raw[i:]
    if kind == "delete line" and len(lines) > 2: del lines[draw(st.integers(0, len(lines) - 2))]
    if kind == "trailing delimiter": return b"\n".join([lines[0]] + [l + b"," if l else l for l in lines[1:]])
    if kind == "latin-1": return raw.decode("utf-8").encode("latin-1", errors="replace")
    if kind == "utf-16": return raw.decode("utf-8").encode("utf-16")
    if kind == "blank lines": return raw.replace(b"\n", b"\n\n", draw(st.integers(1, 3)))
    if kind == "cr line endings": return raw.replace(b"\n", b"\r")
    if kind == "nul byte":
        i = draw(st.integers(0, len(raw))); return raw[:i] + b"\x00" + raw[i:]
    if kind == "header only": return lines[0] + b"\n"
    if kind == "duplicate header line": return lines[0] + b"\n" + raw
    return b"\n".join(lines)


def last_line_may_be_cut(out: str) -> bool:
    return "has no line break at its end" in out


@given(case=S.cases(), kind=st.sampled_from(FILE_DAMAGE), policy=st.sampled_from(["strict", "drop"]), data=st.data())
def test_damaged_files_are_refused_or_read_faithfully(case, kind, policy, data):
    "Cut, flipped, re-encoded CSV files: exit 0 or 2; a cut file that loads keeps every complete row exactly."
    raw = damaged(S.csv_bytes(case), kind, data.draw)
    note(f"{kind} {policy}: {raw[:3000]!r}")
    with tempfile.TemporaryDirectory() as folder:
        (Path(folder) / "registry.csv").write_bytes(raw)
        dictionary = S.write(case, Path(folder), "parquet")[1]
        code, out, _ = check("damaged", Path(folder) / "registry.csv", dictionary, policy, f"csv/{kind}", [kind])
        if code != 0: return
        registry = load_registry(Path(folder) / "registry.csv", dictionary, policy=policy)
        report = registry.report
        assert report.rows_in == report.rows_kept + len(report.dropped_rows)
        if kind != "truncate": return
        whole = S.expect(case, policy)
        if whole.code != 0: return
        loaded = {plain(i): n for n, i in enumerate(registry.ids)}
        cut_row = len(registry.ids) - 1 if last_line_may_be_cut(out) else None  # only the last line may be cut, and is then noted
        found = []
        for key, expected in whole.values.items():
            by_id = dict(zip(whole.ids, expected))
            for i, n in loaded.items():
                if n == cut_row: continue
                if i not in by_id: found.append(f"id {i!r} is not in the file"); continue
                value = plain(registry.data[key].iloc[n]) if key in registry.data else None
                if value != by_id[i] and key in registry.data: found.append(f"{key!r} of {i!r}: {value!r} != {by_id[i]!r}")
        assert not silent(found), found


YAML_DAMAGE = ["delete line", "duplicate line", "dedent line", "replace value", "sections string", "deep nesting", "tab", "garbage"]
YAML_VALUES = st.sampled_from(["yes", "no", "~", "1.5", "[a, b]", "{a: b}", "2024-01-01", "'x'", "- a", "&a x", "*a", "!!python/object:os.system",
                               "[" * 50, "x" * 300, "''", ".inf", "0x10", "True"])


def damaged_yaml(text: str, kind: str, draw) -> str:
    lines = text.split("\n")
    i = draw(st.integers(0, max(0, len(lines) - 2)))
    if kind == "delete line": del lines[i]
    elif kind == "duplicate line": lines.insert(i, lines[i])
    elif kind == "dedent line": lines[i] = lines[i].lstrip()
    elif kind == "replace value" and ":" in lines[i]: lines[i] = lines[i].split(":", 1)[0] + ": " + draw(YAML_VALUES)
    elif kind == "sections string": lines.insert(0, "sections: " + draw(S.WORD))
    elif kind == "deep nesting": lines.insert(0, "description: " + "[" * draw(st.integers(100, 30_000)) + "]" * 30_000)
    elif kind == "tab": lines[i] = "\t" + lines[i]
    elif kind == "garbage": lines[i] = draw(st.text(max_size=40))
    return "\n".join(lines)


@given(case=S.cases(max_rows=4), kinds=st.lists(st.sampled_from(YAML_DAMAGE), min_size=1, max_size=3), data=st.data())
def test_damaged_dictionaries_are_refused_with_a_message(case, kinds, data):
    "YAML mutations of the data dictionary: exit 0 or 2, never a traceback; a refusal names the dictionary."
    with tempfile.TemporaryDirectory() as folder:
        data_path, dictionary = S.write(case, Path(folder), "csv")
        text = dictionary.read_text(encoding="utf-8")
        for kind in kinds: text = damaged_yaml(text, kind, data.draw)
        dictionary.write_text(text, encoding="utf-8", errors="surrogatepass")
        note(text[:3000])
        code, _, err = check("yaml", data_path, dictionary, data.draw(st.sampled_from(["strict", "drop"])), "yaml", kinds)
        if code == 2: assert len(err) < 20_000


TYPED = st.sampled_from(["int", "float", "bool", "datetime", "timedelta", "list", "dict", "bytes", "decimal", "category", "mixed", "index"])


def typed_column(kind: str, n: int, draw):
    import datetime, decimal
    import numpy as np
    if kind == "int": return pd.array(draw(st.lists(st.one_of(st.none(), st.integers(-10**6, 10**6)), min_size=n, max_size=n)), dtype="Int64")
    if kind == "float": return draw(st.lists(st.floats(), min_size=n, max_size=n))
    if kind == "bool": return draw(st.lists(st.booleans(), min_size=n, max_size=n))
    if kind == "datetime": return pd.to_datetime(draw(st.lists(st.datetimes(datetime.datetime(1700, 1, 1), datetime.datetime(2200, 1, 1)), min_size=n, max_size=n)))
    if kind == "timedelta": return pd.to_timedelta(draw(st.lists(st.integers(0, 10**6), min_size=n, max_size=n)), unit="s")
    if kind == "list": return [np.array([1.0, 2.0])] * n
    if kind == "dict": return [{"a": 1}] * n
    if kind == "bytes": return [b"\x00\xff"] * n
    if kind == "decimal": return [decimal.Decimal(draw(st.sampled_from(["1.5", "2", "-0.25"]))) for _ in range(n)]
    if kind == "category": return pd.Categorical(draw(st.lists(st.sampled_from(["No", "Yes", "None", "1"]), min_size=n, max_size=n)))
    return draw(st.lists(st.one_of(st.none(), st.integers(0, 3), st.text(max_size=5), st.booleans(), st.floats()), min_size=n, max_size=n))


@pytest.mark.parametrize("fmt", ["parquet", "xlsx"])
@settings(max_examples=max(10, settings.default.max_examples // 2))
@given(case=S.cases(), kind=TYPED, policy=st.sampled_from(["strict", "drop"]), data=st.data())
def test_typed_cells_are_read_or_refused(fmt, case, kind, policy, data):
    "Parquet and Excel columns of every storage type in place of a feature's column: exit 0 or 2, rows accounted for."
    assume(len(case.header) > 1)
    table = S.frame(case)
    column = data.draw(st.sampled_from(case.header))
    if kind == "index": table = table.set_index(column)
    else: table[column] = typed_column(kind, len(table), data.draw)
    note(f"{kind} in {column!r} ({fmt}, {policy})")
    with tempfile.TemporaryDirectory() as folder:
        dictionary = S.write(case, Path(folder), "csv")[1]
        path = Path(folder) / f"typed.{fmt}"
        try:
            table.to_parquet(path) if fmt == "parquet" else table.to_excel(path, index=kind == "index")
        except Exception:  # a type the format itself cannot store: nothing to load
            assume(False)
        code, _, err = check("typed", path, dictionary, policy, f"{fmt}/{kind}", [kind])
        if code == 2 and kind in ("list", "dict", "bytes") and fmt == "parquet": assert "not one value per cell" in err
        if code == 0:
            report = load_registry(path, dictionary, policy=policy).report
            assert report.rows_in == report.rows_kept + len(report.dropped_rows)


def valid(case: S.Case) -> bool:
    return S.expect(case, "strict").code == 0


@settings(max_examples=max(5, settings.default.max_examples // 3))
@given(case=S.cases().filter(valid))
def test_valid_registry_round_trips(case):
    "A valid registry loads the same from CSV, Parquet and Excel, and again from its typed values written back to each."
    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        loaded = [load_registry(S.write(case, folder, fmt)[0], folder / "dictionary.yaml").data for fmt in ("csv", "parquet", "xlsx")]
        for other in loaded[1:]: pd.testing.assert_frame_equal(loaded[0], other)
        registry = load_registry(folder / "registry.csv", folder / "dictionary.yaml")
        pd.testing.assert_frame_equal(open_registry(registry.save(folder / "saved")).data, registry.data)
        typed = registry.data.drop(columns=list(registry.dictionary.derived_at_load), errors="ignore")
        typed.to_csv(folder / "typed.csv", index=False)
        typed.to_excel(folder / "typed.xlsx", index=False)
        for path in (folder / "typed.csv", folder / "typed.xlsx"):
            pd.testing.assert_frame_equal(load_registry(path, folder / "dictionary.yaml").data, registry.data)


@settings(max_examples=3)
@given(case=S.cases(max_rows=5).flatmap(S.mutated), policy=st.sampled_from(["strict", "drop"]))
def test_console_script(case, policy):
    "The installed `creason` command on mutated registries: exit 0 or 2, no traceback."
    with tempfile.TemporaryDirectory() as folder:
        data, dictionary = S.write(case, Path(folder), "csv")
        r = subprocess.run([CREASON, "registry", "check", "--data", str(data), "--dictionary", str(dictionary), "--policy", policy],
                           capture_output=True, text=True, timeout=600)
        assert r.returncode in (0, 2) and "Traceback" not in r.stderr, r.stderr
