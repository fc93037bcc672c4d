"""Reproduce one row of the table "Rewards the base rate cannot earn" in nbs/08_train.ipynb.

    .venv/bin/python benchmarks/cpu_learning_sweep.py CONFIG [--work DIR]
    .venv/bin/python benchmarks/cpu_learning_sweep.py --list

Each configuration builds a synthetic question set of binary targets whose record predicts them (headroom),
keeps a gold-balanced share of the training questions (per target, each answer equally often: always answering
the commoner value earns a reward of one half, no more), trains the embedded SmolLM2-135M with GRPO on the CPU
profile, and reads the letter the model finds most probable after the answer lead-in, before and after training,
on a gold-balanced subset of the held-out questions. Beside them: the majority value, the population prior, and
a classical model (gradient boosting) fitted on the training questions' own prompt fields, i.e. exactly what the
model is shown. Differences are paired, with 95% intervals from a bootstrap over patients. It prints one JSON
object (also written to DIR/CONFIG/result.json) with times, CPU seconds and load averages: the machine is shared.
"""
import argparse
import contextlib
import json
import os
import re
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd

MODEL = "smollm2-135m-instruct"
HEADROOM_TARGETS = ("culture_negative", "vasopressor", "empirical_therapy_appropriate", "bacteremia", "mdr",
                    "mechanical_ventilation", "recent_hospitalization")  # binary, built together: one question set
QUESTIONS = {"patients": 20000, "max_prompt_tokens": 256, "test_patients": 400, "train_questions": 8000}
FOUR = ["culture_negative", "vasopressor", "bacteremia", "mdr"]
CONFIGS = {  # name: targets trained and evaluated, evaluation questions per target and gold value, GRPO overrides of CPU
    "r1": dict(targets=FOUR + ["empirical_therapy_appropriate"], per_class=40,
               train=dict(max_steps=36, save_steps=36, learning_rate=5e-4)),
    "r2": dict(targets=FOUR, per_class=20, train=dict(max_steps=16, save_steps=4, learning_rate=1e-3)),
    "r3": dict(targets=FOUR, per_class=20, train=dict(max_steps=24, save_steps=4, prompts_per_step=16, learning_rate=3e-4,
                                                      temperature=1.0)),
    # letters_only: the answer rollout samples among the option letters only (not a profile option: see letters_only_sampling)
    "r4": dict(targets=FOUR, per_class=20, letters_only=True,
               train=dict(max_steps=20, save_steps=4, learning_rate=2e-4, temperature=1.0)),
}


def build_questions(work: Path) -> Path:
    "The question set every configuration draws from (built once under `work`)."
    from creason.questions import QuestionConfig, build_question_set, write_question_set
    from creason.synthetic import generate
    folder = work / "questions"
    if (folder / "test.parquet").is_file(): return folder
    registry, truth = generate(QUESTIONS["patients"], 0)
    config = QuestionConfig(task="denoise", seed=0, test_patients=QUESTIONS["test_patients"], targets=HEADROOM_TARGETS,
                            train_questions=QUESTIONS["train_questions"], max_prompt_tokens=QUESTIONS["max_prompt_tokens"],
                            over_budget="shorten")
    write_question_set(build_question_set(registry, config, truth=truth), folder)
    return folder


def balanced(questions: pd.DataFrame, per_class: int | None, tag: str) -> pd.DataFrame:
    "Per target and gold value the same number of questions: the rarest value's count (at most `per_class`), seeded."
    from creason.core import rng_for
    parts = []
    for target, block in questions.groupby("target", sort=True):
        n = block["gold_value"].value_counts().min() if per_class is None else min(per_class, block["gold_value"].value_counts().min())
        for gold, rows in block.groupby("gold_value", sort=True):
            parts.append(rows.iloc[np.sort(rng_for(0, tag, target, gold).choice(len(rows), n, replace=False))])
    return pd.concat(parts).sort_values("question_id").reset_index(drop=True)


def prompt_fields(prompt) -> dict:
    "The 'Name: value' lines of a question's record, as the model reads them."
    record = prompt[1]["content"].split("\n\nWhat would be")[0]
    return dict(re.findall(r"^([^\[\n][^:\n]*): (.*)$", record, re.M))


def classical_on_prompt(train: pd.DataFrame, held_out: pd.DataFrame) -> list:
    "Gradient boosting on the prompt fields of one target's training questions (classes weighted equally): its answers."
    from sklearn.ensemble import HistGradientBoostingClassifier
    x = pd.DataFrame([prompt_fields(p) for p in pd.concat([train["prompt"], held_out["prompt"]])])
    x = x.drop(columns=[c for c in x if (x[c] == "[MASK]").any()])
    numbers = x.apply(pd.to_numeric, errors="coerce")
    numeric = numbers.notna().mean() > 0.9
    design = pd.concat([numbers.loc[:, numeric], pd.get_dummies(x.loc[:, ~numeric]).astype(float)], axis=1)
    y = train["gold_value"].to_numpy()
    weight = pd.Series(y).map(1 / pd.Series(y).value_counts()).to_numpy()
    model = HistGradientBoostingClassifier(random_state=0).fit(design.iloc[:len(train)], y, sample_weight=weight)
    return list(model.predict(design.iloc[len(train):]))


def as_predictions(held_out: pd.DataFrame, values) -> pd.DataFrame:
    "A predictions table (evaluation layout) from one chosen option value per question."
    from creason.answers import option_letters
    letters = [option_letters(list(o))[list(o).index(v)] for o, v in zip(held_out["options"], values)]
    keep = held_out[["question_id", "record_id", "target", "section", "answer", "gold_value"]]
    return keep.assign(predicted=letters, correct=[float(l == a) for l, a in zip(letters, held_out["answer"])])


def baselines(train: pd.DataFrame, held_out: pd.DataFrame) -> dict:
    "Majority value, population prior (the option the build's prior favours) and the classical model, as predictions."
    majority = train.groupby("target")["gold_value"].agg(lambda s: s.value_counts().idxmax())
    classical = pd.Series(dtype=object)
    for target, block in held_out.groupby("target", sort=True):
        classical = pd.concat([classical, pd.Series(classical_on_prompt(train[train.target == target], block), index=block.index)])
    return {"majority": as_predictions(held_out, [majority[t] for t in held_out["target"]]),
            "prior": as_predictions(held_out, [list(o)[int(np.argmax(p))] for o, p in zip(held_out["options"], held_out["option_prior"])]),
            "classical_on_prompt": as_predictions(held_out, classical.sort_index().tolist())}


def letter_probe(model: str, held_out: pd.DataFrame) -> tuple:
    "The most probable option letter after the answer lead-in (the evaluation's fallback), with wall and CPU seconds."
    from creason.answers import ANSWER_LEAD_IN, choose_by_probability, option_letters, softmax
    from creason.inference import HFEngine, as_messages
    wall, cpu = time.time(), time.process_time()
    engine = HFEngine.load(model, batch_size=16, progress=False)
    options = [list(o) for o in held_out["options"]]
    logprobs = engine.option_logprobs([as_messages(p) for p in held_out["prompt"]], [ANSWER_LEAD_IN] * len(options),
                                      [option_letters(o) for o in options])
    chosen = [choose_by_probability(softmax(lp), o) for lp, o in zip(logprobs, options)]
    table = as_predictions(held_out, [o[option_letters(o).index(c)] for c, o in zip(chosen, options)])
    return table, {"wall_s": round(time.time() - wall, 1), "cpu_s": round(time.process_time() - cpu, 1)}


def summary(table: pd.DataFrame) -> dict:
    "Accuracy, balanced accuracy (mean over target and gold value) and the chosen letters."
    return {"accuracy": round(float(table["correct"].mean()), 4),
            "balanced_accuracy": round(float(table.groupby(["target", "gold_value"])["correct"].mean().mean()), 4),
            "letters": {k: int(v) for k, v in table["predicted"].value_counts().sort_index().items()},
            "per_target": table.groupby("target")["correct"].mean().round(3).to_dict()}


def paired(reference: pd.DataFrame, table: pd.DataFrame) -> dict:
    "Difference table − reference, paired, 95% bootstrap interval over patients, exact McNemar p."
    from creason.evaluate import BootstrapConfig, compare_predictions
    c = compare_predictions(reference, table, BootstrapConfig(resamples=2000, seed=0))
    return {"difference": c["difference"], "ci": [c["ci_low"], c["ci_high"]], "mcnemar_p": c["mcnemar"]["p_value"]}


@contextlib.contextmanager
def letters_only_sampling(letters: str = "AB"):
    "While active, the answer rollout samples its token among the option letters only: no format phase to learn first."
    # The loss is unchanged: advantages are centred within each prompt's group, so the gradient of log p(letter) over the
    # whole vocabulary equals that of the letter-restricted policy (the normaliser's term cancels).
    import torch
    import creason.train as module
    from creason.inference import letter_token
    original_rollout, original_sampler = module.answer_rollout, module.sample_next_tokens
    allowed = {}
    def rollout(params, tokenizer, brace):
        allowed["ids"] = [letter_token(tokenizer, l) for l in letters]
        return original_rollout(params, tokenizer, brace)
    def sample(model, sequences, params, pad, generator=None):
        distinct = list(dict.fromkeys(map(tuple, sequences)))
        ids, mask = module._left_pad([list(x) for x in distinct], pad, model.device)
        logits = model(input_ids=ids, attention_mask=mask, logits_to_keep=1, use_cache=False).logits[:, -1].float()
        logits = module._sampler(params)(ids, logits)
        restricted = torch.full_like(logits, float("-inf"))
        restricted[:, allowed["ids"]] = logits[:, allowed["ids"]]
        rows = torch.log_softmax(restricted, dim=-1)[[distinct.index(tuple(x)) for x in sequences]]
        tokens = torch.multinomial(rows.exp(), 1, generator=generator).squeeze(-1)
        return tokens.tolist(), rows.gather(-1, tokens[:, None]).squeeze(-1).tolist()
    module.answer_rollout, module.sample_next_tokens = rollout, sample
    try: yield
    finally: module.answer_rollout, module.sample_next_tokens = original_rollout, original_sampler


def train_and_probe(config: dict, train_questions: pd.DataFrame, held_out: pd.DataFrame, out: Path) -> tuple:
    "GRPO on the balanced training questions (CPU profile plus the configuration's overrides), then the trained probe."
    from creason.core import write_parquet
    from creason.train import CPU, read_metrics, train
    write_parquet(train_questions, out / "questions" / "train.parquet")
    params = replace(CPU, **config["train"]).check()
    wall, cpu = time.time(), time.process_time()
    with letters_only_sampling() if config.get("letters_only") else contextlib.nullcontext():
        run = train(params, MODEL, out / "questions", out / "run")
    facts = {"train_wall_s": round(time.time() - wall, 1), "train_cpu_s": round(time.process_time() - cpu, 1),
             "load_after_training": os.getloadavg()}
    rewards = read_metrics(run)["reward"]
    quarter = max(1, len(rewards) // 4)
    facts |= {"reward_curve": rewards.round(3).tolist(), "reward_first_quarter": round(rewards.iloc[:quarter].mean(), 3),
              "reward_last_quarter": round(rewards.iloc[-quarter:].mean(), 3)}
    trained, facts["trained_probe"] = letter_probe(str(run / "final"), held_out)
    return trained, facts


def run_config(name: str, work: Path) -> dict:
    "One row of the table: baselines, base and trained model on the same gold-balanced held-out questions."
    import torch
    torch.set_num_threads(2)
    config, out = CONFIGS[name], work / name
    folder = build_questions(work)
    train_all, test = (pd.read_parquet(folder / f"{s}.parquet") for s in ("train", "test"))
    train_all, test = (t[t.target.isin(config["targets"])].reset_index(drop=True) for t in (train_all, test))
    held_out = balanced(test, 40, "eval")  # smaller sets are the first questions of this draw: the base probe is shared
    held_out = held_out.groupby(["target", "gold_value"], sort=False).head(config["per_class"]).reset_index(drop=True)
    train_questions = balanced(train_all, None, "train")
    result = {"config": config, "questions": QUESTIONS, "train_questions": len(train_questions), "held_out": len(held_out),
              "held_out_patients": int(held_out["record_id"].nunique()), "load_at_start": os.getloadavg()}
    base, result["base_probe"] = letter_probe(MODEL, held_out)
    tables = {"base": base, **baselines(train_all, held_out)}
    trained, facts = train_and_probe(config, train_questions, held_out, out)
    result |= facts
    result |= {k: summary(v) for k, v in {**tables, "trained": trained}.items()}
    result |= {f"trained_minus_{k}": paired(v, trained) for k, v in tables.items()}
    out.mkdir(parents=True, exist_ok=True)
    (out / "result.json").write_text(json.dumps(result, indent=1, default=str))
    return result


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("config", nargs="?", choices=sorted(CONFIGS))
    parser.add_argument("--work", default="/tmp/cpu_learning_sweep", help="folder for the question set and the runs")
    parser.add_argument("--list", action="store_true", help="print the configurations and exit")
    args = parser.parse_args()
    if args.list or args.config is None: print(json.dumps(CONFIGS, indent=1))
    else: print(json.dumps(run_config(args.config, Path(args.work)), indent=1, default=str))
