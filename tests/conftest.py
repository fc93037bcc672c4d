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
