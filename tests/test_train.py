"""`creason train` and `creason export verl` end to end on the tiny model: resume, two processes, verl round-trip."""
import importlib.util
import json
import random
import shutil

import pandas as pd
import pytest

from creason.answers import random_completion, score
from creason.core import write_parquet
from creason.train import read_completions, read_metrics

PROMPTS_PER_STEP, GENERATIONS = 2, 4


@pytest.fixture
def questions(tmp_path):
    from creason.train import example_questions
    folder = tmp_path / "questions"
    write_parquet(example_questions(16), folder / "train.parquet")
    write_parquet(example_questions(4, seed=1), folder / "test.parquet")
    return folder


@pytest.fixture
def tiny_run(tmp_path):
    "Options of a small CPU-profile run of the tiny model: a params file (the same spec `creason run` reads) names model and settings."
    params = tmp_path / "tiny.yaml"
    params.write_text("registry: {synthetic: {}}\nmodel: tiny\n"
                      f"train: {{profile: cpu, prompts_per_step: {PROMPTS_PER_STEP}, num_generations: {GENERATIONS}}}\n")
    return ["--params", params]


def test_resume_continues_without_repeating_or_losing_steps(cli, questions, tiny_run, tmp_path):
    run = tmp_path / "run"
    first = cli("train", *tiny_run, "--questions", questions, "--out", run, "--max-steps", 4, "--save-steps", 3)
    assert first.returncode == 0, first.stderr[-3000:]
    assert sorted(p.name for p in (run / "checkpoints").glob("checkpoint-*")) == ["checkpoint-3", "checkpoint-4"]  # every 3 and at the end
    shutil.rmtree(run / "checkpoints" / "checkpoint-4")  # as after a crash: step 4 logged, its checkpoint lost
    step4_before = read_completions(run).query("step == 4").question_id.tolist()
    assert not cli("train", *tiny_run, "--questions", questions, "--out", run, "--max-steps", 6).returncode == 0  # no silent overwrite
    second = cli("train", *tiny_run, "--questions", questions, "--out", run, "--max-steps", 6, "--save-steps", 3, "--resume")
    assert second.returncode == 0, second.stderr[-3000:]
    completions, metrics = read_completions(run), read_metrics(run)
    assert completions.groupby("step").size().to_dict() == {s: PROMPTS_PER_STEP * GENERATIONS for s in range(1, 7)}
    assert metrics.step.tolist() == [1, 2, 3, 4, 5, 6]
    assert completions.query("step == 4").question_id.tolist() == step4_before  # same data order after resuming
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["resumed_from"] == "checkpoint-3" and manifest["counts"]["steps"] == 6


def test_two_processes_through_accelerate(cli, questions, tiny_run, tmp_path):
    run = tmp_path / "run2"
    result = cli("train", *tiny_run, "--questions", questions, "--out", run, "--max-steps", 2, "--save-steps", 2,
                 "--num-processes", 2)
    assert result.returncode == 0, result.stderr[-3000:]
    completions = read_completions(run)
    assert sorted({f.name.split("-r")[-1] for f in run.glob("completions-*.parquet")}) == ["0.parquet", "1.parquet"]
    assert completions.groupby("step").size().to_dict() == {1: PROMPTS_PER_STEP * GENERATIONS, 2: PROMPTS_PER_STEP * GENERATIONS}
    assert json.loads((run / "manifest.json").read_text())["counts"]["processes"] == 2
    assert (run / "final" / "adapter_config.json").is_file()


def test_verl_export_schema_and_reward_equivalence(cli, questions, tmp_path):
    out = tmp_path / "verl"
    result = cli("export", "verl", "--questions", questions, "--out", out)
    assert result.returncode == 0, result.stderr
    train = pd.read_parquet(out / "train.parquet")
    assert list(train.columns) == ["data_source", "prompt", "ability", "reward_model", "extra_info"]
    assert len(train) == 16 and len(pd.read_parquet(out / "test.parquet")) == 4
    assert set(train.reward_model[0]) == {"style", "ground_truth"}
    assert all(m["role"] != "assistant" for p in train.prompt for m in p)  # verl cannot continue a pre-fill
    spec = importlib.util.spec_from_file_location("creason_reward", out / "creason_reward.py")
    reward = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(reward)
    rng, scores = random.Random(5), []
    for i in range(100):
        row = train.iloc[i % len(train)]
        gold, options = row.reward_model["ground_truth"], list(row.extra_info["options"])
        text = random_completion(rng) if i % 2 else f"Reasoning... \\boxed{{{rng.choice('AB')}}}"
        ours = score(text, gold, options)
        assert reward.compute_score(row.data_source, text, gold, row.extra_info) == ours
        scores.append(ours)
    assert 0 < sum(scores) < 100  # both outcomes were exercised
    assert "algorithm.adv_estimator=grpo" in (out / "run_verl.sh").read_text()


def test_user_errors_exit_with_code_2(cli, questions, tmp_path):
    result = cli("train", "--profile", "cpu", "--questions", questions, "--out", tmp_path / "r")
    assert result.returncode == 2 and "--model is required" in result.stderr
    result = cli("train", "--profile", "cpu", "--model", "tiny", "--questions", tmp_path / "nowhere", "--out", tmp_path / "r")
    assert result.returncode == 2 and "no questions file found" in result.stderr


@pytest.mark.parametrize("option, message", [
    (["--max-steps", "-2"], "--max-steps must be at least 1, or -1 to train `epochs` passes, got -2"),
    (["--max-steps", "0"], "--max-steps must be at least 1"),
    (["--save-steps", "0"], "--save-steps must be at least 1, got 0"),
    (["--num-generations", "1"], "--num-generations must be at least 2"),
    (["--max-completion-length", "0"], "--max-completion-length must be at least 1"),
    (["--num-processes", "0"], "--num-processes must be at least 1"),
    (["--profile", "cpu2"], "--profile: unknown profile 'cpu2' (did you mean cpu?)"),
    (["--rollout", "answers"], "--rollout must be one of free, answer, two_phase, got 'answers'"),
])
def test_argument_ranges_exit_with_code_2(cli, questions, tmp_path, option, message):
    result = cli("train", "--profile", "cpu", "--model", "tiny", "--questions", questions, "--out", tmp_path / "r", *option)
    assert result.returncode == 2 and message in result.stderr and "Traceback" not in result.stderr, result.stderr[-2000:]
    assert not (tmp_path / "r").exists()  # refused before anything was written


def test_a_params_file_value_is_named_by_its_yaml_key(cli, questions, tiny_run, tmp_path):
    params = tmp_path / "bad.yaml"
    params.write_text("registry: {synthetic: {}}\nmodel: tiny\ntrain: {profile: cpu, save_steps: 0}\n")
    result = cli("train", "--params", params, "--questions", questions, "--out", tmp_path / "r")
    assert result.returncode == 2 and f"{params}: train.save_steps must be at least 1, got 0" in result.stderr, result.stderr[-2000:]
    params.write_text("registry: {synthetic: {}}\nmodel: tiny\ntrain: {profile: cpu, num_generation: 4}\n")  # a typo
    result = cli("train", "--params", params, "--questions", questions, "--out", tmp_path / "r")
    assert result.returncode == 2 and "train.num_generation: unknown setting (did you mean num_generations?)" in result.stderr
    result = cli("train", *tiny_run, "--questions", questions, "--out", tmp_path / "r", "--num-generation", 4)  # a mistyped option
    assert result.returncode == 2 and "--num-generations" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "r").exists()


def test_paper_profile_offline_with_a_model_built_from_a_config(cli, questions, tmp_path):
    "The default (paper) profile: full fine-tuning with a KL reference model, which TRL loads by the config's name."
    run = tmp_path / "paper"
    result = cli("train", "--model", "tiny", "--questions", questions, "--out", run, "--max-steps", 1,
                 "--max-completion-length", 4, "--num-generations", 2, "--save-steps", 1)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "cpu: bf16 True runs as False; optim 'paged_adamw_8bit' runs as 'adamw_torch'" in result.stderr  # said, not hidden
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["params"]["beta"] == 0.04 and manifest["params"]["lora_rank"] == 0
    assert manifest["device_adjustments"] == {"bf16": [True, False], "optim": ["paged_adamw_8bit", "adamw_torch"]}
    metrics = read_metrics(run)
    assert metrics.step.tolist() == [1] and metrics["kl"].iloc[0] == 0.0  # the reference starts equal to the policy
    assert (run / "final" / "model.safetensors").is_file()
