"""The run spec and the options generated from it: every config field becomes an option with its trailing comment
as help, a params file's section gives the defaults, and an error names the setting as the user wrote it."""
import contextlib
import dataclasses
import inspect
import io
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from creason.core import CreasonError
from creason.spec import config_class, parse_command

ROOT = Path(__file__).resolve().parent.parent


@dataclass
class Command:
    "A command with a params file (the shape of creason questions / evaluate / train)."
    out: str  # output folder
    params: str | None = None  # params file whose section gives the defaults
    profile: str | None = None  # training profile (train only)


def field_comments(cls) -> dict:
    "Each field's trailing comment, read from the class's source."
    source = inspect.getsource(cls)
    found = {}
    for f in dataclasses.fields(cls):
        m = re.search(rf"^\s+{f.name}: [^#\n]*#\s*(.+)$", source, re.M)
        if m: found[f.name] = m.group(1).strip()
    return found


def help_text(section: str) -> str:
    out = io.StringIO()
    with contextlib.redirect_stdout(out), pytest.raises(SystemExit):
        parse_command(["--help"], Command, section, prog=f"creason {section}")
    return re.sub(r"[\s│]+", " ", out.getvalue())  # tyro wraps help text in a box: compare words


@pytest.mark.parametrize("section", ["questions", "evaluate", "train"])
def test_every_field_is_an_option_with_its_comment_as_help(section):
    cls = config_class(section)
    text = help_text(section)
    comments = field_comments(cls)
    assert len(comments) >= len(dataclasses.fields(cls)) // 2, comments  # the classes document their fields
    for f in dataclasses.fields(cls):
        if f.name == "task": continue  # questions' task is the params file's tasks list
        assert f"--{f.name.replace('_', '-')}" in text, f.name
    for name, comment in comments.items():
        words = " ".join(comment.split()[:4])
        assert words in text, (name, words)


def test_params_file_gives_defaults_and_the_command_line_overrides(tmp_path):
    params = tmp_path / "p.yaml"
    params.write_text("registry: {source: icu}\nmodel: tiny\ntrain: {profile: cpu, max_steps: 7, num_generations: 6}\n")
    command, config, spec = parse_command(["--out", "o", "--params", str(params), "--max-steps", "3"], Command, "train", prog="t",
                                          pre=("profile",))
    assert (config.max_steps, config.num_generations, config.lora_rank, spec.name) == (3, 6, 16, "p")
    _, paper, _ = parse_command(["--out", "o", "--params", str(params), "--profile", "paper"], Command, "train", prog="t", pre=("profile",))
    assert (paper.lora_rank, paper.max_steps) == (0, 7)  # --profile replaces the file's profile; the file's overrides stay


def test_an_error_names_the_yaml_key_or_the_flag(tmp_path):
    params = tmp_path / "p.yaml"
    params.write_text("registry: {source: icu}\nmodel: tiny\ntrain: {num_generations: 1}\nquestions: {test_patients: 5}\n")
    with pytest.raises(CreasonError, match=r"p\.yaml: train\.num_generations must be at least 2"):
        parse_command(["--out", "o", "--params", str(params)], Command, "train", prog="t")
    params.write_text("registry: {source: icu}\nmodel: tiny\ntrain: {profile: cpu}\n")
    with pytest.raises(CreasonError, match=r"^--num-generations must be at least 2") as err:
        parse_command(["--out", "o", "--params", str(params), "--num-generations", "1"], Command, "train", prog="t")
    assert "p.yaml" not in str(err.value)
    with pytest.raises(CreasonError, match=r"^--test-patients must be at least 1, got 0"):
        parse_command(["--out", "o", "--test-patients", "0"], Command, "questions", prog="q")


def test_a_mistyped_option_exits_2_with_the_closest_option(capsys):
    with pytest.raises(SystemExit) as exit_:
        parse_command(["--out", "o", "--num-generation", "4"], Command, "train", prog="t")
    assert exit_.value.code == 2 and "--num-generations" in capsys.readouterr().err


def test_the_evaluate_options_require_the_question_set(capsys):
    with pytest.raises(SystemExit) as exit_:
        parse_command(["--out", "o", "--model", "tiny"], Command, "evaluate", prog="e")
    assert exit_.value.code == 2 and "--questions" in capsys.readouterr().err
    _, config, _ = parse_command(["--out", "o", "--model", "tiny", "--questions", "q", "--limit", "5"], Command, "evaluate", prog="e")
    assert (config.model, config.questions, config.limit) == ("tiny", "q", 5)


def test_the_spec_and_the_cli_stay_light():
    code = ("import sys, creason.cli, creason.registry, creason.spec; "
            "heavy = [m for m in ('tyro', 'torch', 'transformers', 'creason.train') if m in sys.modules]; print(heavy)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and result.stdout.strip() == "[]", result.stdout + result.stderr


@pytest.mark.parametrize("command, options", [("evaluate", ["--resamples", "--protocol", "--params"]),
                                              ("train", ["--lora-rank", "--num-generations", "--profile", "--num-processes"])])
def test_the_commands_help_is_generated_and_light(command, options):
    "`creason evaluate --help` and `creason train --help`: an option per field, without importing torch, transformers or TRL."
    code = ("import sys, contextlib\nfrom creason.cli import main\nwith contextlib.suppress(SystemExit): main([sys.argv[1], '--help'])\n"
            "print('heavy:', [m for m in ('torch', 'transformers', 'trl') if m in sys.modules])")
    result = subprocess.run([sys.executable, "-c", code, command], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and result.stdout.rstrip().endswith("heavy: []"), result.stdout[-500:] + result.stderr
    for option in options: assert option in result.stdout, option
