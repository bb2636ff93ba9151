"""Shared test setup: offline mode everywhere, paths to the notebooks and to the real data."""
import os
import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

# No Hub in tests: without these each failed Hub call burns seconds of retries.
for var in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "HF_EVALUATE_OFFLINE", "TRANSFORMERS_OFFLINE"):
    os.environ[var] = "1"

ROOT = Path(__file__).resolve().parents[1]
NBS = ROOT/"nbs"
SHARED_DATA = ROOT.parent/"shared"/"data"


def subprocess_env(threads: int = 1) -> dict:
    "Environment for a child process: offline, `threads` CPU threads (two notebooks share two cores)."
    env = dict(os.environ)
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        env[var] = str(threads)
    env["PYTHONWARNINGS"] = "ignore"
    return env


def need_shared(*parts) -> Path:
    "The path under ../shared/data, or skip the test with the reason."
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"{path} is absent: the real-data tier needs the project's ../shared/data folder")
    return path


@pytest.fixture(scope="session")
def ftrecipes_cmd():
    exe = shutil.which("ftrecipes")
    if exe is None: pytest.fail("the `ftrecipes` command is not installed; run: pip install -e '.[dev]'")
    return exe


def assert_stops_before_training(ftrecipes_cmd, task: str, cases: list, tmp_path):
    "Run `ftrecipes run TASK -p preset=smoke -p data=DATA ARGS` for each (data, args, expected) case, two at a time: each must exit 1 with one stderr line holding `expected`, and no checkpoint written."
    def run(i):
        data, extra, _ = cases[i]
        return subprocess.run([ftrecipes_cmd, "run", task, "-p", "preset=smoke", "-p", f"data={data}", *extra,
                               "-o", str(tmp_path/f"out{i}"), "-q"], capture_output=True, text=True, env=subprocess_env(threads=1))
    with ThreadPoolExecutor(max_workers=2) as pool: procs = list(pool.map(run, range(len(cases))))
    for i, ((data, extra, expected), proc) in enumerate(zip(cases, procs)):
        lines = [l for l in proc.stderr.splitlines() if l.strip()]
        assert proc.returncode == 1 and len(lines) == 1 and expected in lines[0], f"{data} {extra}: {proc.stderr[-2000:]}"
        assert not (tmp_path/f"out{i}"/"checkpoints").exists(), f"{data} {extra}: training started"
