"`creason serve` speaks the OpenAI schema on loopback; the openai engine works against it; `creason bench inference` prints one JSON line."
import json
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from creason.inference import HFEngine, OpenAIEngine, predict

ROOT = Path(__file__).resolve().parents[1]
CREASON = str(Path(sys.executable).parent / "creason")
PROMPT = [{"role": "system", "content": "Put your final answer (letter choice only) within \\boxed{}."},
          {"role": "user", "content": "Lactate (mmol/L): [MASK]\nWhat would be the masked value of 'Lactate'?\nA. 1.1\nB. 3.1"},
          {"role": "assistant", "content": "Let's think step by step."}]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    "A `creason serve --model tiny` subprocess on a free loopback port; yields its base URL."
    log = tmp_path_factory.mktemp("serve") / "stderr.log"
    with open(log, "w") as err:
        proc = subprocess.Popen([CREASON, "serve", "--model", "tiny", "--port", "0", "--device", "cpu"], cwd=ROOT,
                                stdout=subprocess.PIPE, stderr=err, text=True)
    first_line = []
    reader = threading.Thread(target=lambda: first_line.append(proc.stdout.readline()), daemon=True)
    reader.start(); reader.join(180)
    if not first_line or " at http://" not in first_line[0]:
        proc.kill()
        pytest.fail(f"creason serve did not start: {first_line} {log.read_text()[-2000:]}")
    try: yield first_line[0].split(" at ")[1].split()[0]
    finally:
        proc.terminate(); proc.wait(timeout=30)


def call(url, body=None):
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=120) as r: return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e: return e.code, json.loads(e.read())


def test_models_endpoint(server):
    assert server.startswith("http://127.0.0.1:")
    status, body = call(server + "/models")
    assert status == 200 and body["data"][0]["id"] == "tiny"


def test_chat_completion_schema(server):
    status, body = call(server + "/chat/completions", {"model": "tiny", "messages": PROMPT, "max_tokens": 6})
    assert status == 200 and body["object"] == "chat.completion"
    choice = body["choices"][0]
    assert choice["message"]["role"] == "assistant" and isinstance(choice["message"]["content"], str)
    assert choice["finish_reason"] == "length"  # random weights never end
    assert body["usage"]["completion_tokens"] == 6 and body["usage"]["prompt_tokens"] > 20


@pytest.mark.parametrize("body, message", [
    ({"messages": []}, "non-empty list"),
    ({"messages": [{"role": "robot", "content": "x"}]}, "role"),
    ({"messages": PROMPT, "stream": True}, "streaming"),
    ({"messages": PROMPT, "temperature": "hot"}, "sampling"),
])
def test_bad_requests_get_400(server, body, message):
    status, reply = call(server + "/chat/completions", body)
    assert status == 400 and message in reply["error"]["message"]


def test_unknown_route_404(server):
    assert call(server + "/embeddings", {})[0] == 404


def test_openai_engine_matches_the_hf_engine(server):
    local = HFEngine.load("tiny", device="cpu", progress=False)
    remote = OpenAIEngine(server, "tiny", progress=False, concurrency=2)
    prompts = [PROMPT, PROMPT[:2], [{"role": "user", "content": "Hello"}]]
    assert remote.generate(prompts, max_new_tokens=5) == local.generate(prompts, max_new_tokens=5)


def test_predict_over_http_records_the_fallback(server):
    import pandas as pd
    questions = pd.DataFrame({"question_id": ["q1", "q2"], "prompt": [PROMPT, PROMPT], "options": [["1.1", "3.1"]] * 2, "answer": ["B", "A"]})
    default = predict(OpenAIEngine(server, "tiny", progress=False), questions, max_new_tokens=3)
    assert default.method.tolist() == ["unavailable"] * 2  # the letters are not in a random model's top 20
    everything = OpenAIEngine(server, "tiny", progress=False, top_logprobs=49152)
    p = predict(everything, questions, max_new_tokens=3)
    assert p.method.tolist() == ["logprob"] * 2 and all(abs(sum(x) - 1) < 1e-6 for x in p.option_probs)


def test_bench_inference_prints_one_json_line():
    r = subprocess.run([CREASON, "bench", "inference", "--model", "tiny", "--questions", "3", "--batch-size", "3",
                        "--max-new-tokens", "4", "--device", "cpu", "--json"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    [line] = r.stdout.strip().splitlines()
    result = json.loads(line)
    assert {"batched_tokens_per_s", "sequential_tokens_per_s", "speedup", "batch_size", "model_id"} <= set(result)
    assert result["sequential_tokens"] == result["batched_tokens"] == 12
