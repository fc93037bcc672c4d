"""`creason run`: the smoke params file end to end, stage reuse, and failures that name their cause."""
import json
import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
STAGES = ["registry", "questions", "baseline", "evaluate_base", "train", "evaluate_trained", "report"]


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    "One smoke run into a fresh reports folder (shared by the tests of this module)."
    from conftest import run_cli
    reports = tmp_path_factory.mktemp("reports")
    result = run_cli("run", ROOT / "params" / "smoke.yaml", "--reports", reports)
    return reports, result


def test_smoke_run_writes_every_stage_and_the_report(smoke):
    reports, result = smoke
    assert result.returncode == 0, result.stderr[-4000:]
    run = reports / "smoke"
    for stage in STAGES:
        assert (run / f"{stage}.ipynb").is_file() and (run / f"{stage}.html").is_file(), stage
    manifest = json.loads((run / "manifest.json").read_text())
    assert set(manifest["timings_s"]) == set(STAGES)
    assert manifest["model_id"].startswith("tiny") and manifest["code"]["commit"] and manifest["libraries"]["torch"].startswith("2.13.0")
    assert manifest["created"].endswith("Z") and manifest["seeds"]["questions"] == 1
    assert set(manifest["data"]) == {"registry/registry.parquet", "registry/dictionary.yaml"}
    for task in ("denoise", "predict"):
        for folder in ("eval_base", "eval_trained", "baseline"):
            assert (run / folder / task / "metrics.json").is_file(), (folder, task)
    tables = {p.name for p in (run / "tables").iterdir()}
    for stem in ("denoising", "prediction"):
        assert {f"{stem}.csv", f"{stem}.md", f"{stem}.tex"} <= tables, stem
    assert {"training_curves.png", "per_feature_accuracy.png"} <= {p.name for p in (run / "figures").iterdir()}
    index = (reports / "index.html").read_text()
    assert "smoke" in index and "http://" not in index and "https://" not in index
    assert str(reports / "index.html") in result.stdout


def test_finished_stages_are_reused_and_force_reruns(smoke, cli):
    reports, first = smoke
    assert first.returncode == 0
    again = cli("run", ROOT / "params" / "smoke.yaml", "--reports", reports)
    assert again.returncode == 0, again.stderr[-3000:]
    manifest = json.loads((reports / "smoke" / "manifest.json").read_text())
    assert manifest["reused_stages"] == STAGES


def test_a_failing_stage_names_the_notebook_and_cell(cli, tmp_path):
    params = tmp_path / "broken.yaml"
    params.write_text("name: broken\nregistry: {synthetic: {patients: 200, seed: 1}}\n"
                      "questions: {tasks: [denoise], test_patients: 20, train_questions: 40, spacing_sd: -1}\nmodel: tiny\n")
    result = cli("run", params, "--reports", tmp_path / "reports")
    assert result.returncode == 2
    assert "stage 'questions' failed in nbs/pipeline/questions.ipynb: code cell" in result.stderr
    assert "spacing-sd must be positive, got -1" in result.stderr and "Traceback" not in result.stderr
    assert (tmp_path / "reports" / "broken" / "registry.html").is_file()  # what finished is kept


@pytest.mark.parametrize("text, message", [
    ("registry: {source: icu}\nevalaute: {limit: 3}\n", "unknown section(s) ['evalaute']"),
    ("registry: {data: absent.csv, dictionary: absent.yaml}\n", "absent.csv not found"),
    ("registry: {source: mimic-sepsis, inputs: {mimic_dir: no-such-folder}}\n", "no-such-folder not found"),
    ("registry: {source: icu}\ntrained_from: never_ran\n", "'never_ran' has no trained model"),
])
def test_params_errors_exit_2_before_running(cli, tmp_path, text, message):
    params = tmp_path / "p.yaml"
    params.write_text(text)
    result = cli("run", params, "--reports", tmp_path / "reports")
    assert result.returncode == 2 and message in result.stderr, result.stderr[-2000:]
    assert not list((tmp_path / "reports").glob("*/registry.ipynb"))


def test_every_params_file_is_valid():
    from creason.run import evaluate_settings, load_params, stages_for
    from creason.train import params_from_section
    for path in sorted((ROOT / "params").glob("*.yaml")):
        params = load_params(path)
        evaluate_settings(params)
        if "train" in params.sections: params_from_section(params.sections["train"])
        assert stages_for(params)[0].name == "registry", path
