"""Same seed, same data, same device: the same numbers.

Each recipe runs twice through `ftrecipes run` (papermill, so each run is a fresh process with its own imports and
random state), with its smoke preset and one CPU thread each, side by side. The training loss, the number of steps and
every test metric must be equal to the last bit: any difference means some randomness escapes the seed (data order,
dropout, initialisation of a new head, sampling in evaluation). These are smoke runs on tiny models: they test the
machinery that makes runs repeatable, not the quality of a model."""
import json
import subprocess
from concurrent.futures import ThreadPoolExecutor

import pytest

from conftest import NBS, subprocess_env

TASKS = sorted(p.stem.split("_", 1)[1] for p in NBS.glob("1[0-9]_*.ipynb"))


def numbers(results: dict) -> dict:
    "What must repeat: every numeric test metric, the training loss and the optimizer steps."
    test = {f"test {k}": v for k, v in results["metrics"]["test"].items()
            if isinstance(v, (int, float)) and not isinstance(v, bool)}
    return {**test, "train_loss": results["training"]["train_loss"], "global_step": results["training"]["global_step"]}


@pytest.mark.parametrize("task", TASKS)
def test_same_seed_gives_same_metrics(task, ftrecipes_cmd, tmp_path):
    def run(name):
        return subprocess.run([ftrecipes_cmd, "run", task, "-p", "preset=smoke", "-o", str(tmp_path/name), "-q"],
                              capture_output=True, text=True, env=subprocess_env(threads=1))
    with ThreadPoolExecutor(max_workers=2) as pool: first, second = pool.map(run, ["first", "second"])
    for proc in (first, second): assert proc.returncode == 0, proc.stderr[-3000:]
    a, b = (numbers(json.loads((tmp_path/name/"results.json").read_text())) for name in ("first", "second"))
    differ = {k: (a[k], b.get(k)) for k in a if a[k] != b.get(k)}
    assert not differ, f"{task}: two runs with seed 42 on the same data and device differ: {differ}"
