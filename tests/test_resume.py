"""Training survives a kill at any moment: `creason train` killed at random moments (mid-step, mid-save, while
loading) and resumed until it finishes logs every step 1..N exactly once, with the data order of an uninterrupted run.

CREASON_RESUME_KILLS sets how many kills to try (default 3); the test prints how many hit a run and where."""
import os
import signal
import subprocess
import time

import pytest

from conftest import CREASON
from creason.core import rng_for, write_parquet
from creason.train import STAGING, read_completions, read_metrics

STEPS, PROMPTS_PER_STEP, GENERATIONS = 5, 2, 4
KILLS = int(os.environ.get("CREASON_RESUME_KILLS", "3"))


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    "A question set, a params file, and an uninterrupted reference run (its wall time sets the kill moments)."
    from creason.train import example_questions
    root = tmp_path_factory.mktemp("resume")
    write_parquet(example_questions(16), root / "questions" / "train.parquet")
    (root / "tiny.yaml").write_text(f"registry: {{synthetic: {{}}}}\nmodel: tiny\ntrain: {{profile: cpu, prompts_per_step: {PROMPTS_PER_STEP}, num_generations: {GENERATIONS}, "
                                    f"max_steps: {STEPS}, save_steps: 1}}\n")
    started = time.perf_counter()
    reference = subprocess.run(train_command(root, root / "reference"), capture_output=True, text=True, timeout=600)
    assert reference.returncode == 0, reference.stderr[-3000:]
    return root, time.perf_counter() - started


def train_command(root, out, resume=False):
    return [CREASON, "train", "--params", str(root / "tiny.yaml"), "--model", "tiny", "--questions", str(root / "questions"),
            "--out", str(out)] + (["--resume"] if resume else [])


def logged_steps(out) -> list[int]:
    return read_metrics(out).step.tolist() if (out / "metrics.jsonl").is_file() else []


def where(out, steps_before: int) -> str:
    "What the killed attempt was doing, judged from what it left."
    if (out / "checkpoints" / STAGING).exists(): return "while saving a checkpoint"
    steps = logged_steps(out)
    if len(steps) == steps_before: return f"before its first step (start-up, or step {steps_before + 1})"
    return f"after logging step {steps[-1]}"


def kill_and_resume_until_done(root, out, rng, reference_s, kills_left: int) -> list[str]:
    "Start the run, kill it at a random moment, resume, ... (at most `kills_left` kills) until an attempt finishes."
    kills = []
    while True:
        steps_before = len(logged_steps(out))
        proc = subprocess.Popen(train_command(root, out, resume=out.exists()), stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE, text=True, start_new_session=True)
        delay = float(rng.uniform(0.05, 1.0)) * reference_s if len(kills) < kills_left else 600
        try: _, stderr = proc.communicate(timeout=delay)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)  # the whole process group, with no chance to clean up
            proc.communicate()
            kills.append(where(out, steps_before))
            continue
        assert proc.returncode == 0, stderr[-3000:]
        return kills


def test_random_kills_then_resume(setup):
    root, reference_s = setup
    rng, reference, hits = rng_for(0, "kill-moments"), read_completions(root / "reference"), []
    for series in range(3 * KILLS):  # a series ends when an attempt outruns its kill; start another until KILLS kills hit
        if len(hits) >= KILLS: break
        out = root / f"killed-{series}"
        hits += kill_and_resume_until_done(root, out, rng, reference_s, KILLS - len(hits))
        completions, metrics = read_completions(out), read_metrics(out)
        assert completions.groupby("step").size().to_dict() == {s: PROMPTS_PER_STEP * GENERATIONS for s in range(1, STEPS + 1)}
        assert metrics.step.tolist() == list(range(1, STEPS + 1))
        assert completions.question_id.tolist() == reference.question_id.tolist()  # the data order of the run without kills
        assert (out / "final" / "adapter_config.json").is_file() and not (out / "checkpoints" / STAGING).exists()
    print(f"\n{len(hits)} kills in {series + 1} series (uninterrupted run {reference_s:.1f} s): " + "; ".join(hits))
    assert len(hits) >= KILLS


def test_half_written_checkpoint_is_skipped(setup, tmp_path):
    "What a kill mid-save left before checkpoints were staged: an incomplete checkpoint-N, skipped with a message."
    root, _ = setup
    out = tmp_path / "run"
    first = subprocess.run(train_command(root, out) + ["--max-steps", "2"], capture_output=True, text=True, timeout=600)
    assert first.returncode == 0, first.stderr[-3000:]
    (out / "checkpoints" / "checkpoint-3").mkdir()  # empty, as the Trainer's first file was about to be written
    (out / "checkpoints" / STAGING / "checkpoint-3").mkdir(parents=True)
    resumed = subprocess.run(train_command(root, out, resume=True) + ["--max-steps", "3"], capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "checkpoint-3: incomplete checkpoint (no trainer_state.json), skipped" in resumed.stderr
    assert read_metrics(out).step.tolist() == [1, 2, 3]
    assert (out / "checkpoints" / "checkpoint-3" / "trainer_state.json").is_file()
    again = subprocess.run(train_command(root, out, resume=True) + ["--max-steps", "3"], capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr[-3000:]  # resumed from its last step: nothing more is trained
    assert read_metrics(out).step.tolist() == [1, 2, 3] and not (out / "checkpoints" / "checkpoint-4").exists()
