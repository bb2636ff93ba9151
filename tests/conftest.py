"""Shared test setup: offline mode everywhere, paths to the notebooks."""
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

# No Hub in tests: without these each failed Hub call burns seconds of retries.
for var in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "HF_EVALUATE_OFFLINE", "TRANSFORMERS_OFFLINE"):
    os.environ[var] = "1"

ROOT = Path(__file__).resolve().parents[1]
NBS = ROOT/"nbs"
# the recipe notebooks, as the registry finds them (the modules that declare a RECIPE), in notebook order
RECIPE_NOTEBOOKS = [p.name for p in __import__("ftrecipes.recipes", fromlist=["recipes"]).recipes().values()]


def subprocess_env(threads: int = 1) -> dict:
    "Environment for a child process: offline, `threads` CPU threads (two notebooks share two cores)."
    env = dict(os.environ)
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        env[var] = str(threads)
    env["PYTHONWARNINGS"] = "ignore"
    return env


def tracked_copy(dest: Path) -> list:
    "Copy the files git tracks into `dest` (a clean checkout, free of build leftovers); return their paths."
    files = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    if not files: pytest.skip("not a git checkout")
    for f in files:
        if (ROOT/f).is_file():
            (dest/f).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT/f, dest/f)
    return files


def build_wheel(dest: Path) -> Path:
    "Build the wheel pip builds from the repository (as on Colab), from a clean copy of the tracked files, into `dest`."
    src = dest/"src"
    tracked_copy(src)  # no egg-info of an earlier install, whose file list would hide a missing package-data entry
    proc = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", str(src),
                           "-w", str(dest)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return next(dest.glob("ftrecipes-*.whl"))


@pytest.fixture(scope="session")
def ftrecipes_cmd():
    exe = shutil.which("ftrecipes")
    if exe is None: pytest.fail("the `ftrecipes` command is not installed; run: pip install -e '.[dev]'")
    return exe


