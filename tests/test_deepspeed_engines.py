"""DeepSpeed ZeRO-3 with two CPU processes (DeepSpeed's CPU accelerator): `creason train --accelerate-config zero3_cpu`
trains, logs both processes' completions, and checkpoints both processes' ZeRO shards. Slow (DeepSpeed builds its
communication op on first use); skipped where deepspeed is not installed (`make test-engines` runs it)."""
import json
import os

import pytest

from conftest import run_cli
from creason.core import write_parquet
from creason.train import read_completions, read_metrics

pytestmark = pytest.mark.slow
pytest.importorskip("deepspeed", reason="needs deepspeed (make test-engines installs it into .cache/venv-engines and runs this file)")


def test_zero3_on_two_cpu_processes(tmp_path, monkeypatch):
    from creason.train import example_questions
    write_parquet(example_questions(16), tmp_path / "questions" / "train.parquet")
    (tmp_path / "tiny.yaml").write_text("registry: {synthetic: {}}\nmodel: tiny\ntrain: {profile: cpu, prompts_per_step: 2, num_generations: 4, max_steps: 2, save_steps: 1}\n")
    monkeypatch.setenv("DS_ACCELERATOR", "cpu")
    run = tmp_path / "run"
    result = run_cli("train", "--params", tmp_path / "tiny.yaml", "--model", "tiny", "--questions", tmp_path / "questions",
                     "--out", run, "--num-processes", 2, "--accelerate-config", "zero3_cpu", timeout=1800)
    assert result.returncode == 0, result.stderr[-3000:]
    assert read_metrics(run).step.tolist() == [1, 2]
    assert read_completions(run).groupby("step").size().to_dict() == {1: 8, 2: 8}
    shards = sorted(p.name for p in (run / "checkpoints" / "checkpoint-2" / "global_step2").iterdir())
    assert [s for s in shards if "model_states" in s] == ["zero_pp_rank_0_mp_rank_00_model_states.pt", "zero_pp_rank_1_mp_rank_00_model_states.pt"]
    assert json.loads((run / "manifest.json").read_text())["counts"]["processes"] == 2
    assert (run / "final" / "adapter_model.safetensors").is_file() and os.path.getsize(run / "final" / "adapter_model.safetensors") > 0
