"""`creason run`: the smoke params file end to end, two folders (shareable reports, private run data), stage reuse,
and failures that name their cause before anything runs."""
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
STAGES = ["registry", "questions", "baseline", "evaluate_base", "train", "evaluate_trained", "report"]


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    "One smoke run into fresh report and run-data folders (shared by the tests of this module)."
    from conftest import run_cli
    root = tmp_path_factory.mktemp("smoke")
    result = run_cli("run", ROOT / "params" / "smoke.yaml", "--reports", root / "reports", "--run-data", root / "runs")
    return root / "reports", root / "runs", result


def test_smoke_run_writes_every_stage_and_the_report(smoke):
    reports, runs, result = smoke
    assert result.returncode == 0, result.stderr[-4000:]
    run, data = reports / "smoke", runs / "smoke"
    for stage in STAGES:
        assert (run / f"{stage}.ipynb").is_file() and (run / f"{stage}.html").is_file(), stage
    manifest = json.loads((run / "manifest.json").read_text())
    assert set(manifest["timings_s"]) == set(STAGES)
    assert manifest["model_id"].startswith("tiny") and manifest["code"]["commit"] and manifest["libraries"]["torch"].startswith("2.13.0")
    assert manifest["created"].endswith("Z") and manifest["seeds"]["questions"] == 1
    assert set(manifest["data"]) == {"registry/registry.parquet", "registry/dictionary.yaml"}
    for task in ("denoise", "predict"):
        for folder in ("eval_base", "eval_trained", "baseline"):
            assert (data / folder / task / "metrics.json").is_file(), (folder, task)
    tables = {p.name for p in (run / "tables").iterdir()}
    for stem in ("denoising", "prediction", "choices_predict", "attacks_denoise", "headroom_by_section_denoise", "headroom_by_target_denoise"):
        assert {f"{stem}.csv", f"{stem}.md", f"{stem}.tex"} <= tables, stem
    assert "prior" in (run / "tables" / "denoising.csv").read_text().split("\n", 1)[0].split(",")  # the prior beside every accuracy
    summary = json.loads((run / "summary.json").read_text())
    assert {"denoise: population prior", "denoise: letters chosen", "denoise: trained skill above prior"} <= set(summary["headline"])
    assert [v["text"].split(":")[0] for v in summary["verdicts"]] == ["denoise", "predict"]  # one sentence per task
    figures = json.loads((run / "figures" / "captions.json").read_text())
    assert {"training_curves.png", "per_feature_accuracy.png", "calibration_denoise_base.png", "letters_denoise.png",
            "attacks_denoise.png"} <= set(figures)
    assert set(figures) == {p.name for p in (run / "figures").glob("*.png")}  # every figure has a caption
    index = (reports / "index.html").read_text()
    assert "smoke" in index and "http://" not in index and "https://" not in index
    assert "in-domain" in index and "generalization (" not in index  # a run that trained its own model is not generalization
    assert str(reports / "index.html") in result.stdout


def test_patient_data_stays_in_the_run_data_folder(smoke):
    from creason.registry import open_registry
    from creason.reports import shareable_problems
    reports, runs, result = smoke
    assert result.returncode == 0
    private = {"registry.parquet", "train.parquet", "test.parquet", "predictions.parquet"}
    assert not [p for p in reports.rglob("*") if p.name in private or p.name.startswith("completions")]
    assert (runs / "smoke" / "registry" / "registry.parquet").is_file() and (runs / "smoke" / "train" / "final").is_dir()
    assert shareable_problems(reports, open_registry(runs / "smoke" / "registry")) == []
    for page in (reports / "smoke").glob("*.ipynb"):
        outputs = [o for c in json.loads(page.read_text())["cells"] for o in c.get("outputs", [])]
        assert not [o for o in outputs if o.get("name") == "stderr"], page.name  # warnings and progress bars went to logs/
    assert list((runs / "smoke" / "logs").glob("*.stderr.txt"))


def test_finished_stages_are_reused_and_force_reruns(smoke, cli):
    reports, runs, first = smoke
    assert first.returncode == 0
    again = cli("run", ROOT / "params" / "smoke.yaml", "--reports", reports, "--run-data", runs)
    assert again.returncode == 0, again.stderr[-3000:]
    manifest = json.loads((reports / "smoke" / "manifest.json").read_text())
    assert manifest["reused_stages"] == STAGES


def test_a_failing_stage_names_the_notebook_and_cell(cli, tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    (data / "reg.csv").write_text("id,age\nP1,40\nP2,old\n")
    (data / "dict.yaml").write_text("id: id\nfeatures:\n  - {key: id, name: Id, type: identifier}\n"
                                    "  - {key: age, name: Age, type: numeric, section: Demographics}\n")
    params = tmp_path / "broken.yaml"
    params.write_text(f"name: broken\nregistry: {{data: {data}/reg.csv, dictionary: {data}/dict.yaml}}\nmodel: tiny\n")
    result = cli("run", params, "--reports", tmp_path / "reports", "--run-data", tmp_path / "runs")
    assert result.returncode == 2, result.stderr[-2000:]
    assert "stage 'registry' failed in nbs/pipeline/registry.ipynb: code cell" in result.stderr
    assert "'old'" in result.stderr and "Traceback" not in result.stderr
    assert (tmp_path / "reports" / "broken" / "registry.ipynb").is_file()  # kept, for reading


@pytest.mark.parametrize("text, message", [
    ("registry: {source: icu}\nmodel: tiny\nevalaute: {limit: 3}\n", "evalaute: unknown section (did you mean evaluate?)"),
    ("registry: {source: icu}\nmodel: tiny\ntrain: {profile: cpu, num_generation: 4}\n",
     "train.num_generation: unknown setting (did you mean num_generations?)"),
    ("registry: {source: icu}\nmodel: tiny\nquestions: {test_patients: 0}\n", "questions.test_patients must be at least 1, got 0"),
    ("registry: {data: absent.csv, dictionary: absent.yaml}\nmodel: tiny\n", "registry.data: /"),
    ("registry: {source: mimic-sepsis, inputs: {mimic_dir: no-such-folder}}\nmodel: tiny\n", "registry.inputs.mimic_dir: /"),
    ("registry: {source: icu}\nmodel: no-such-model\n", "model: no-such-model: no such model folder"),
    ("registry: {source: icu}\nmodel: tiny\ntrained_from: never_ran\n", "trained_from: 'never_ran' has no trained model"),
])
def test_params_errors_exit_2_before_running(cli, tmp_path, text, message):
    params = tmp_path / "p.yaml"
    params.write_text(text)
    good = tmp_path / "a_good.yaml"  # listed first: a mistake in any file stops the command before the first stage
    good.write_text("name: good\nregistry: {synthetic: {patients: 200}}\nmodel: tiny\n")
    result = cli("run", good, params, "--reports", tmp_path / "reports", "--run-data", tmp_path / "runs")
    assert result.returncode == 2 and f"p.yaml: {message}" in result.stderr, result.stderr[-2000:]
    if message.endswith("/"): assert "not found" in result.stderr
    assert not (tmp_path / "reports").exists() and not (tmp_path / "runs").exists()


def test_every_params_file_is_valid():
    from creason.run import stages_for
    from creason.spec import check_resources, load_spec
    for path in sorted((ROOT / "params").glob("*.yaml")):
        spec = load_spec(path)
        assert stages_for(spec)[0].name == "registry", path
        if spec.registry.kind == "synthetic" or spec.registry.source in ("icu", "stroke", "pbc"):
            if not spec.model.startswith("/"): check_resources(spec)  # paper_phi4's model lives on a GPU node
