"""`creason export lm-eval` writes a question set as an lm-evaluation-harness task; where `lm-eval` is installed, the
harness's own CLI ranks the options of the same questions as creason's log-probability choice (slow test)."""
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from conftest import run_cli
from creason.core import write_parquet
from creason.harness import compare_with_lm_eval, read_lm_eval_samples

LM_EVAL = shutil.which("lm_eval", path=str(Path(sys.executable).parent))


@pytest.fixture(scope="module")
def question_set(tmp_path_factory):
    root = tmp_path_factory.mktemp("harness")
    for args in (("synth", "--patients", 300, "--seed", 5, "--out", root / "registry"),
                 ("questions", "--registry", root / "registry", "--out", root / "questions", "--test-patients", 30,
                  "--train-questions", 20, "--seed", 5, "--targets", "lactate,sex,dementia,sofa_total", "--tokenizer", "none")):
        result = run_cli(*args)
        assert result.returncode == 0, result.stderr
    return root


def test_export_writes_a_task(question_set):
    out = question_set / "task"
    result = run_cli("export", "lm-eval", "--questions", question_set / "questions", "--out", out, "--model", "tiny",
                     "--limit", 24, "--seed", 2)
    assert result.returncode == 0, result.stderr
    docs = [json.loads(line) for line in (out / "questions.jsonl").read_text().splitlines()]
    test = pd.read_parquet(question_set / "questions" / "test.parquet").set_index("question_id")
    assert len(docs) == 24 and len({d["question_id"] for d in docs}) == 24
    for d in docs:
        assert d["choices"][d["gold"]] == test.answer[d["question_id"]]
        assert d["context"].endswith("\\boxed{") and d["options"] == list(test.options[d["question_id"]])
    assert "task: creason_questions" in (out / "creason_questions.yaml").read_text()
    assert os.access(out / "run_lm_eval.sh", os.X_OK)


def test_export_errors_are_messages(tmp_path):
    result = run_cli("export", "lm-eval", "--questions", tmp_path / "none", "--out", tmp_path / "t")
    assert result.returncode == 2 and "no questions file found" in result.stderr and "Traceback" not in result.stderr
    result = run_cli("export", "lm-eval", "--questions", tmp_path, "--out", tmp_path / "t", "--limit", 0)
    assert result.returncode == 2 and "--limit must be at least 1" in result.stderr


@pytest.mark.slow
@pytest.mark.skipif(LM_EVAL is None, reason="needs lm-eval (make test-engines installs it into .cache/venv-engines and runs this file)")
def test_lm_eval_ranks_the_options_as_creason_does(question_set):
    "The harness's CLI on the exported task against `creason evaluate` (answer protocol) on the same questions."
    out, run = question_set / "task-slow", question_set / "creason-run"
    assert run_cli("export", "lm-eval", "--questions", question_set / "questions", "--out", out, "--model", "tiny",
                   "--limit", 40, "--seed", 2).returncode == 0
    evaluated = run_cli("evaluate", "--model", "tiny", "--questions", question_set / "questions", "--out", run, "--limit", 40,
                        "--seed", 2, "--protocol", "answer", "--device", "cpu", "--bootstrap", 100)
    assert evaluated.returncode == 0, evaluated.stderr
    harness = subprocess.run(["bash", str(out / "run_lm_eval.sh")], capture_output=True, text=True, timeout=1800,
                             env={**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"})
    assert harness.returncode == 0, harness.stderr[-3000:]
    result = compare_with_lm_eval(read_lm_eval_samples(out / "results"), pd.read_parquet(run / "predictions.parquet"))
    print(f"\nlm-eval vs creason: {result['agree']}/{result['n_questions']} choices agree; "
          f"largest log-prob difference {result['max_abs_loglik_difference']}")
    assert result["n_questions"] == 40
    assert all(min(d["creason_margin_logprob"], d["lm_eval_margin_loglik"]) < 1e-3 for d in result["disagreements"])
    assert result["max_abs_loglik_difference"] < 1e-3
