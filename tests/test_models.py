"Models load by name, folder, adapter or hub id; built-in models are written once, atomically, into the model cache."
import json
import multiprocessing
import shutil
import time

import pytest

from creason import models
from creason.core import CreasonError

STAMP = {"creason_format": 1}


def test_tiny_is_deterministic_and_small():
    model, tok = models.load_model("tiny", device="cpu")
    again, _ = models.load_model("tiny", device="cpu")
    assert all((a == b).all() for a, b in zip(model.state_dict().values(), again.state_dict().values()))
    assert sum(p.numel() for p in model.parameters()) < 5_000_000
    assert model.name_or_path == "tiny" and tok.eos_token == "<|im_end|>"


def test_interrupted_build_leaves_nothing(tmp_path):
    target = tmp_path / "m"
    def crash(tmp):
        (tmp / "config.json").write_text("{}")
        raise KeyboardInterrupt  # a killed run
    with pytest.raises(KeyboardInterrupt): models._build_once(target, crash, STAMP)
    assert not target.exists() and not list(tmp_path.glob(".m-tmp-*"))


def test_stale_temporary_folder_is_removed(tmp_path):
    (tmp_path / ".m-tmp-left-by-a-killed-run").mkdir()
    target = models._build_once(tmp_path / "m", lambda tmp: {}, STAMP)
    assert models._is_complete(target, STAMP) and not list(tmp_path.glob(".m-tmp-*"))


def test_a_new_stamp_rebuilds(tmp_path):
    "A cache written by an older version of the conversion is rebuilt, not trusted."
    builds = []
    for stamp in (STAMP, STAMP, {"creason_format": 2}):
        models._build_once(tmp_path / "m", lambda tmp: builds.append(stamp) or {"note": "x"}, stamp)
    assert builds == [STAMP, {"creason_format": 2}]
    assert json.loads((tmp_path / "m" / models._DONE).read_text()) == {"note": "x", "creason_format": 2}


def _count_builds(target, counter):
    def write(tmp):
        with open(counter, "a") as f: f.write("built\n")
        time.sleep(1.0)  # long enough for the other process to arrive while this one holds the lock
        return {}
    models._build_once(target, write, STAMP)


def test_two_processes_build_once(tmp_path):
    target, counter = tmp_path / "m", tmp_path / "count.txt"
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=_count_builds, args=(target, counter)) for _ in range(2)]
    for p in procs: p.start()
    for p in procs: p.join(30)
    assert [p.exitcode for p in procs] == [0, 0]
    assert counter.read_text() == "built\n" and models._is_complete(target, STAMP)


def test_hub_id_offline_says_how_to_provide_weights(tmp_path, monkeypatch):
    monkeypatch.setenv("CREASON_OFFLINE", "true")
    monkeypatch.setenv("CREASON_MODEL_CACHE", str(tmp_path))
    with pytest.raises(CreasonError) as err: models.load_model("org/some-model", device="cpu")
    for remedy in ("local folder", str(tmp_path / "org--some-model"), "offline = false"): assert remedy in str(err.value)
    with pytest.raises(CreasonError, match="no such model folder"): models.load_model("./not/here", device="cpu")


def test_folder_id_does_not_depend_on_location(tmp_path):
    model, tok = models.load_model("tiny", device="cpu")
    model.save_pretrained(tmp_path / "a" / "run"); tok.save_pretrained(tmp_path / "a" / "run")
    shutil.copytree(tmp_path / "a", tmp_path / "b")
    assert models.model_id(tmp_path / "a" / "run") == models.model_id(tmp_path / "b" / "run")


def test_embedded_converts_once_then_loads_from_cache(tmp_path, monkeypatch):
    "The one end-to-end test with the embedded model: GGUF -> trainable HF folder -> fast reload -> generation stops."
    monkeypatch.setenv("CREASON_MODEL_CACHE", str(tmp_path / "cache"))
    t0 = time.perf_counter()
    folder = models.ensure_embedded()
    convert_s = time.perf_counter() - t0
    assert folder == tmp_path / "cache" / models.EMBEDDED
    assert "quantization_config" not in json.loads((folder / "config.json").read_text())
    conversions = []
    monkeypatch.setattr(models, "_convert_gguf", lambda *a: conversions.append(a) or {})
    t0 = time.perf_counter()
    model, tok = models.load_model(models.EMBEDDED, device="cpu")
    load_s = time.perf_counter() - t0
    print(f"\nembedded model: converted in {convert_s:.1f} s, loaded from cache in {load_s:.1f} s")
    assert conversions == [] and load_s < convert_s
    from transformers.trainer_utils import validate_quantization_for_training
    validate_quantization_for_training(model)  # a GGUF-loaded model would refuse training here
    from creason.inference import HFEngine
    [c] = HFEngine(model, tok, progress=False).generate([[{"role": "user", "content": "What is 2+2? Reply with the number only."}]], 24)
    assert not c.truncated and c.n_tokens < 24, c  # stops at <|im_end|>, the repaired end-of-sequence token
