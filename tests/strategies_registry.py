"""Hypothesis strategies for the registry fuzz suite.

A generated `Case` is a registry as a file holds it: a data dictionary (the YAML layout) and the cells as text (None: an
empty cell). Mutations change cells, types, columns and ids in that model, so `expect` can say, from the documented
rules alone, what loading must do: the exit code under each policy, every kept row and value, and every count of the
load report. `expect` is a deliberately plain second reading of those rules, written without the loader's code."""
import csv
import datetime
import io
import math
import re
from dataclasses import dataclass, field, replace
from decimal import Decimal

import pandas as pd
import yaml
from hypothesis import strategies as st

NA = ("NA", "N/A", "n/a", "na", "NaN", "nan", "NULL", "null", "None", "none", ".", "-", "#N/A")  # the documented spellings
ISO = re.compile(r"\d{4}-\d{2}-\d{2}([ T]\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?)?")
PLAIN_NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)")
WORD = st.text(st.characters(categories=("L", "N"), include_characters="_-. ", exclude_characters="\x00"), min_size=1, max_size=10)
TEXT = st.text(st.characters(categories=("L", "N", "P", "S", "Zs"), exclude_characters="="), max_size=24)


@dataclass
class Case:
    "A registry as a file holds it, and what was done to it."
    doc: dict  # the data dictionary (YAML layout)
    header: list  # column names as written
    rows: list  # one list of cells (text, or None for an empty cell) per data row
    mutations: list = field(default_factory=list)

    def features(self) -> dict:
        return {f["key"]: f for f in self.doc["features"]}

    def column(self, key) -> list:
        i = self.header.index(key)
        return [r[i] for r in self.rows]


# ---------------------------------------------------------------------------------------------------------- generation
def number_text(x) -> str:
    return repr(float(x)) if isinstance(x, float) else str(x)


CODE_SETS = [  # (type, codes) of coded features, tricky labels included: missing-value spellings, Yes/No, digits
    ("binary", None), ("binary", {0: "No", 1: "Yes"}), ("binary", {1: "Male", 2: "Female"}), ("binary", {"M": "Male", "F": "Female"}),
    ("binary", {0: "Nox", 1: "Yesx"}), ("binary", {"NA": "Not applicable", "A": "Applicable"}),
    ("ordinal", {0: "None", 1: "Mild", 2: "Severe"}), ("ordinal", {0: "0", 1: "1", 2: "2", 3: "3"}),
    ("categorical", {1: "-", 2: "Lung", 3: "Urine"}), ("categorical", {0.5: "Half", 1: "One", 10: "Ten"}),
]


@st.composite
def coded_feature(draw, key):
    typ, codes = draw(st.sampled_from(CODE_SETS))
    if draw(st.integers(0, 3)) == 0 and typ != "binary":  # random codes and labels
        n = draw(st.integers(2, 5))
        codes = dict(zip(draw(st.lists(st.integers(-5, 99), min_size=n, max_size=n, unique=True)),
                         draw(st.lists(WORD.map(lambda w: "L" + w.strip()), min_size=n, max_size=n, unique=True))))
    feature = {"key": key, "name": key, "type": typ, "section": "Coded", **({"codes": codes} if codes else {})}
    labels = list((codes or {0: "No", 1: "Yes"}).items())
    spell = st.sampled_from(labels).flatmap(lambda cl: st.sampled_from([cl[1], str(cl[0]), number_text(cl[0]), f" {cl[0]} "]))
    return feature, spell


@st.composite
def numeric_feature(draw, key):
    low = draw(st.one_of(st.none(), st.integers(-100, 0)))
    high = draw(st.one_of(st.none(), st.integers(1, 1000)))
    values = st.one_of(st.integers(low if low is not None else -10**6, high if high is not None else 10**6).map(str),
                       st.floats(low if low is not None else -1e6, high if high is not None else 1e6, allow_nan=False).map(repr))
    feature = {"key": key, "name": key, "type": "numeric", "section": "Numbers",
               **({"min": low} if low is not None else {}), **({"max": high} if high is not None else {})}
    return feature, values


@st.composite
def other_feature(draw, key):
    kind = draw(st.sampled_from(["categorical", "text", "datetime"]))
    if kind == "categorical": return {"key": key, "name": key, "type": "categorical", "section": "Words"}, WORD
    if kind == "text": return {"key": key, "name": key, "type": "text", "role": "context", "section": "Words"}, TEXT.filter(str.strip)
    dates = st.datetimes(datetime.datetime(1900, 1, 1), datetime.datetime(2100, 1, 1))
    spelled = dates.flatmap(lambda d: st.sampled_from([d.strftime("%Y-%m-%d"), d.strftime("%Y-%m-%d %H:%M"), d.strftime("%Y-%m-%dT%H:%M:%S")]))
    return {"key": key, "name": key, "type": "datetime", "role": "context", "section": "Dates"}, spelled


def time_to_event(horizons) -> list:
    "A follow-up time tied to its event indicator, with derived outcomes 'event within H' (names no generated word can take)."
    key, event = "follow⏱", "event⏱"
    return [({"key": key, "name": key, "type": "numeric", "role": "outcome", "section": "Outcomes", "min": 0, "event": event,
              "horizons": [{"within": h, "key": f"within⏱{i}"} for i, h in enumerate(horizons)]},
             st.integers(0, 2000).map(str)),
            ({"key": event, "name": event, "type": "binary", "role": "outcome", "section": "Outcomes"}, st.sampled_from(["0", "1"]))]


@st.composite
def cases(draw, max_rows: int = 12) -> Case:
    "A valid registry: an id column, 1-6 features of every kind (sometimes a time-to-event outcome), 1-`max_rows` rows."
    keys = draw(st.lists(WORD.map(str.strip).filter(lambda k: k and k not in NA), min_size=2, max_size=7, unique=True))
    id_key, keys = keys[0], keys[1:]
    features = [draw(st.one_of(coded_feature(k), numeric_feature(k), other_feature(k))) for k in keys]
    if draw(st.booleans()):
        features += time_to_event(draw(st.lists(st.integers(1, 2000), min_size=1, max_size=2, unique=True)))
    n = draw(st.integers(1, max_rows))
    ids = draw(st.lists(WORD.map(str.strip).filter(lambda k: k and k not in NA), min_size=n, max_size=n, unique=True))
    columns = [ids] + [[draw(spell)] + draw(st.lists(cells_of(spell), min_size=n - 1, max_size=n - 1)) for _, spell in features]
    doc = {"name": "fuzz", "id": id_key, "features": [{"key": id_key, "type": "identifier"}] + [f for f, _ in features]}
    return Case(doc, [id_key] + [f["key"] for f, _ in features], [list(r) for r in zip(*columns)])


def cells_of(spell):
    "Cells of a column: mostly values, some empty or missing-value spellings."
    return st.one_of(spell, spell, spell, st.sampled_from([None, "", "  ", *NA]))


# ----------------------------------------------------------------------------------------------------------- mutations
JUNK = st.one_of(TEXT, st.sampled_from(["1,5", "inf", "-inf", "1e999", "True", "FALSE", "yes", "No", "0x10", "1_000", "٣",
                                        "2024-02-30", "02/01/2024", "2024-01-01T00:00+05:00", " ", "\t", '"', "a\nb"]),
                 st.integers(-10**20, 10**20).map(str), st.floats(allow_nan=True).map(repr),
                 st.text(st.characters(codec="utf-8", exclude_categories=("Cc", "Cs"), exclude_characters="="), min_size=200, max_size=3000))


@st.composite
def mutated(draw, case: Case) -> Case:
    "The case with 0-4 changes to cells, ids and columns."
    case = replace(case, header=list(case.header), rows=[list(r) for r in case.rows], mutations=list(case.mutations))
    for _ in range(draw(st.integers(0, 4))):
        kind = draw(st.sampled_from(["cell", "cell", "cell", "id", "drop column", "extra column", "rename column", "duplicate row", "swap ids"]))
        apply_mutation(draw, case, kind)
        case.mutations.append(kind)
    return case


def apply_mutation(draw, case: Case, kind: str):
    rows, n = case.rows, len(case.rows)
    r, c = draw(st.integers(0, n - 1)), draw(st.integers(0, len(case.header) - 1))
    if kind == "cell": rows[r][c] = draw(st.one_of(JUNK, st.sampled_from([None, "", *NA])))
    elif kind == "id": rows[r][0] = draw(st.sampled_from([None, "", "   ", "NA", rows[(r + 1) % n][0], " " + str(rows[r][0]) + " "]))
    elif kind == "duplicate row": rows.append(list(rows[r]))
    elif kind == "swap ids" and n > 1: rows[0][0], rows[-1][0] = rows[-1][0], rows[0][0]
    elif kind == "extra column":
        case.header.append(draw(WORD.map(str.strip).filter(bool)))
        for row in rows: row.append(draw(st.one_of(st.none(), WORD)))
    elif kind == "drop column" and len(case.header) > 1:
        del case.header[c]
        for row in rows: del row[c]
    elif kind == "rename column": case.header[c] = draw(st.one_of(WORD.map(str.strip).filter(bool), st.sampled_from(case.header)))


# -------------------------------------------------------------------------------------------------------------- files
def csv_bytes(case: Case, sep=",", bom=False, crlf=False) -> bytes:
    out = io.StringIO()
    csv.writer(out, delimiter=sep, lineterminator="\r\n" if crlf else "\n").writerows([case.header] + [["" if v is None else v for v in r] for r in case.rows])
    return (b"\xef\xbb\xbf" if bom else b"") + out.getvalue().encode("utf-8")


def frame(case: Case) -> pd.DataFrame:
    "The cells as text columns (a duplicated header name cannot be a DataFrame column: callers skip those)."
    return pd.DataFrame([list(r) for r in case.rows], columns=list(case.header), dtype=object)


def write(case: Case, folder, fmt: str, **csv_options):
    "Write the case as `fmt` (csv, tsv, parquet, xlsx) and its dictionary; return (data path, dictionary path)."
    dictionary = folder / "dictionary.yaml"
    dictionary.write_text(yaml.safe_dump(case.doc, allow_unicode=True, sort_keys=False), encoding="utf-8")
    data = folder / f"registry.{fmt}"
    if fmt in ("csv", "tsv"): data.write_bytes(csv_bytes(case, sep="\t" if fmt == "tsv" else csv_options.get("sep", ","),
                                                          bom=csv_options.get("bom", False), crlf=csv_options.get("crlf", False)))
    elif fmt == "parquet": frame(case).to_parquet(data, index=False)
    else: frame(case).to_excel(data, index=False)
    return data, dictionary


# ------------------------------------------------------------------------------------------------- the expected load
def canon(v) -> str:
    s = repr(v) if isinstance(v, (int, float)) else str(v).strip()
    if not PLAIN_NUMBER.fullmatch(s): return s
    d = Decimal(s)
    return str(int(d)) if d == d.to_integral_value() else format(d.normalize(), "f")


def reading(text, f: dict):
    "What a cell means under the documented rules: ('value', v), ('missing', spelling or None) or ('bad', None)."
    if text is None or not text.strip(): return "missing", None
    s = text.strip()
    codes = f.get("codes") or ({0: "No", 1: "Yes"} if f["type"] == "binary" else None)
    if codes:
        by_code = {canon(c): label for c, label in codes.items()}
        if s in codes.values(): return "value", s
        if canon(s) in by_code: return "value", by_code[canon(s)]
    if s in NA: return "missing", s
    if codes: return "bad", None
    if f["type"] == "numeric": return number_reading(s, f)
    if f["type"] == "datetime":
        if not ISO.fullmatch(s): return "bad", None
        try: return "value", pd.Timestamp(s)
        except ValueError: return "bad", None
    return "value", s


def number_reading(s: str, f: dict):
    try: x = float(s)
    except ValueError: return "bad", None
    if not math.isfinite(x) or x < f.get("min", -math.inf) or x > f.get("max", math.inf): return "bad", None
    return "value", x


@dataclass
class Expected:
    "What loading must do: exit code, and (when it loads) the kept rows' values, the dropped rows and the report counts."
    code: int
    values: dict = field(default_factory=dict)  # column -> list of values of the kept rows (None: missing)
    ids: list = field(default_factory=list)
    cleared: dict = field(default_factory=dict)  # column -> count
    spellings: dict = field(default_factory=dict)  # column -> {spelling: count}
    dropped_rows: int = 0
    reason: str = ""


def expect(case: Case, policy: str) -> Expected:
    "The documented outcome of loading the case under `policy`."
    feats, header, strict = case.features(), case.header, policy == "strict"
    id_key = case.doc["id"]
    case = replace(case, rows=[r for r in case.rows if not all(v is None or not v.strip() for v in r)])  # lines with no value are skipped
    derived = {h["key"] for f in feats.values() for h in f.get("horizons", [])}
    if len(set(header)) < len(header): return Expected(2, reason="duplicate column name")
    if not case.rows: return Expected(2, reason="empty table")
    undescribed = [c for c in header if c not in feats or c in derived]
    absent = [k for k in feats if k not in header]
    if id_key in absent or (strict and (undescribed or absent)): return Expected(2, reason="columns")
    loaded = [k for k in feats if k in header and k != id_key]
    readings = {k: [reading(v, feats[k]) for v in case.column(k)] for k in loaded}
    ids = [None if v is None or not v.strip() or v.strip() in NA else v.strip() for v in case.column(id_key)]
    present = [i for i in ids if i is not None]
    keep = [i is not None and present.count(i) == 1 for i in ids]
    bad = {k: sum(kind == "bad" for kind, _ in rs) for k, rs in readings.items()}
    if strict and (not all(keep) or any(bad.values())): return Expected(2, reason="values or ids")
    e = Expected(0, cleared={k: n for k, n in bad.items() if n}, dropped_rows=keep.count(False), ids=[i for i, k in zip(ids, keep) if k])
    for k, rs in readings.items():
        spelled = [s for kind, s in rs if kind == "missing" and s]
        if spelled: e.spellings[k] = {s: spelled.count(s) for s in set(spelled)}
        column = [v if kind == "value" else None for (kind, v), k_ in zip(rs, keep) if k_]
        if any(v is not None for v in column): e.values[k] = column
        elif strict: return Expected(2, reason="a column with no value")
    if not e.ids: return Expected(2, reason="no rows left")
    e.values.update(expected_horizons(feats, e.values))
    return e


def expected_horizons(feats: dict, values: dict) -> dict:
    "The outcomes derived from each horizon: Yes (event by H), No (followed beyond H, or to H without it), else unknown."
    out = {}
    for f in feats.values():
        if "horizons" not in f or f["key"] not in values or f["event"] not in values: continue
        for h in f["horizons"]:
            col = []
            for t, ev in zip(values[f["key"]], values[f["event"]]):
                happened = ev == "Yes"
                if t is not None and happened and t <= h["within"]: col.append("Yes")
                elif t is not None and (t > h["within"] or (ev is not None and not happened and t >= h["within"])): col.append("No")
                else: col.append(None)
            if any(v is not None for v in col): out[h["key"]] = col
    return out
