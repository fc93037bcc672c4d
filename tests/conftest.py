import subprocess
import sys
from pathlib import Path

import pytest

CREASON = str(Path(sys.executable).parent / "creason")


def run_cli(*args, cwd=None, timeout=600):
    "Run the installed `creason` console script; return the CompletedProcess (text mode)."
    return subprocess.run([CREASON, *map(str, args)], capture_output=True, text=True, cwd=cwd, timeout=timeout)


@pytest.fixture
def cli():
    return run_cli


# Hypothesis profiles for the registry fuzz suite (tests/test_fuzz_registry.py). `ci` (the default) runs a few hundred
# generated cases in all, derandomized so that CI is repeatable; `thorough` runs thousands with fresh randomness:
#     .venv/bin/python -m pytest tests/test_fuzz_registry.py --hypothesis-profile thorough
try:
    from hypothesis import HealthCheck, settings
except ImportError:  # the dev extra is not installed: the fuzz suite skips itself
    settings = None
if settings is not None:
    _FUZZ = dict(deadline=None, database=None, print_blob=True,
                 suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much])
    settings.register_profile("ci", max_examples=60, derandomize=True, **_FUZZ)
    settings.register_profile("thorough", max_examples=500, **_FUZZ)
    settings.load_profile("ci")
