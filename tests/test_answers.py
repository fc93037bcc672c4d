"The boxed-answer grammar under adversarial and random completions; the reward agrees with the evaluation parse."
import random
import subprocess
import sys

import pytest

from creason.answers import LETTERS, Parse, _letters, option_letters, parse_answer, random_completion, score

OPTIONS = ["1.1", "3.1", "5.1"]

ADVERSARIAL = {  # completion -> (evaluation parse, reward when B is gold)
    r"\boxed{B}": (Parse("B", "ok"), 1.0),
    r"\boxed{\text{B}}": (Parse("B", "ok"), 1.0),
    r"\boxed{B. 3.1}": (Parse("B", "ok"), 1.0),
    r"\boxed{(B) 3.1}": (Parse("B", "ok"), 1.0),
    r"\boxed{ \textbf{Option B} }": (Parse("B", "ok"), 1.0),
    r"$\boxed{B}$ and again \boxed{B}": (Parse("B", "ok"), 1.0),
    r"\boxed{A} no wait \boxed{B}": (Parse(None, "several_letters"), 0.0),
    r"\boxed{B} no wait \boxed{A}": (Parse(None, "several_letters"), 1.0),
    r"\boxed{D}": (Parse(None, "not_an_option"), 0.0),
    r"\boxed{D} then \boxed{B}": (Parse(None, "not_an_option"), 1.0),
    r"\boxed{3.1}": (Parse(None, "no_letter"), 0.0),
    r"\boxed{b}": (Parse(None, "no_letter"), 0.0),
    r"\boxed{A or B}": (Parse(None, "no_letter"), 0.0),
    r"\boxed{(A) or (B)}": (Parse(None, "no_letter"), 0.0),
    r"\boxed{B": (Parse(None, "no_box"), 0.0),
    r"\boxed{}": (Parse(None, "no_letter"), 0.0),
    "The answer is B.": (Parse(None, "no_box"), 0.0),
    r"\fbox{B}": (Parse(None, "no_box"), 0.0),
    r"\boxed{\boxed{B}}": (Parse("B", "ok"), 1.0),
    r"} \boxed{B} {": (Parse("B", "ok"), 1.0),
    r"\boxed{B} \boxed{C": (Parse("B", "ok"), 1.0),
    "": (Parse(None, "no_box"), 0.0),
}


@pytest.mark.parametrize("completion", list(ADVERSARIAL))
def test_adversarial(completion):
    parse, reward = ADVERSARIAL[completion]
    assert parse_answer(completion, OPTIONS) == parse
    assert score(completion, "B", OPTIONS) == reward


def test_letters_beyond_the_options_never_count():
    assert parse_answer(r"\boxed{C}", ["yes", "no"]) == Parse(None, "not_an_option")
    assert score(r"\boxed{C}", "C", ["yes", "no"]) == 0.0


def test_fuzz_parse_and_reward_agree():
    rng = random.Random(20240501)
    outcomes = set()
    for _ in range(20_000):
        text = random_completion(rng)
        options = ["x"] * rng.randint(2, 5)
        gold = rng.choice(option_letters(options))
        p = parse_answer(text, options)
        r = score(text, gold, options)
        outcomes.add(p.status)
        assert (p.letter is not None) == (p.status == "ok"), text
        assert p.letter is None or p.letter in option_letters(options), text
        assert r in (0.0, 1.0), text
        if p.status == "ok": assert r == float(p.letter == gold), text
        if r == 1.0: assert gold in _letters(text), text
        assert parse_answer("Reasoning first.\n" + text + "\nThe end.", options) == p, text
    assert outcomes == {"ok", "no_box", "no_letter", "several_letters", "not_an_option"}  # the generator reaches every case


def test_every_letter_position():
    for n in range(1, 27):
        options = ["v"] * n
        for letter in LETTERS[:n]:
            assert parse_answer(rf"\boxed{{{letter}}}", options) == Parse(letter, "ok")
            assert score(rf"so \boxed{{\text{{{letter}}}}}", letter, options) == 1.0


def test_import_is_light():
    "The reward runs inside training workers: importing it must not pull in torch or transformers."
    code = "import sys, creason.answers; print(sorted(m for m in ('torch', 'transformers', 'numpy', 'pandas') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "[]"
