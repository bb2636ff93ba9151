"""Several processes without code changes: recipes under torchrun with two CPU processes on the gloo backend, the code
path several GPUs take (DistributedDataParallel, one process per device). One recipe per kind of Trainer: an encoder
classifier, a seq2seq model that generates when it evaluates, a causal LM with a LoRA adapter saved beside the merged
model. Smoke size: they test the machinery."""
import json
import math
import subprocess
import sys

import pytest

from conftest import subprocess_env


@pytest.mark.parametrize("task", ["sentiment", "summarization", "text_generation"])
def test_smoke_recipe_under_torchrun_with_two_cpu_processes(ftrecipes_cmd, tmp_path, task):
    "What the docs say to type, `torchrun --nproc_per_node N --no-python ftrecipes run TASK`, with N=2 CPU processes."
    out = tmp_path/"run"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "--no-python",
           ftrecipes_cmd, "run", task, "-p", "preset=smoke", "-o", str(out), "-q"]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=subprocess_env(threads=1), timeout=600)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    # both processes wrote into the one folder the main process chose, and only it wrote the outputs
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]
    assert {"results.json", "model", f"{task}.ipynb", f"{task}.rank1.ipynb"} <= {p.name for p in out.iterdir()}
    assert proc.stdout.count("saved model:") == 1, "one summary, from the main process"
    results = json.loads((out/"results.json").read_text())
    training, p = results["training"], results["parameters"]
    assert training["processes"] == 2 and results["environment"]["processes"] == 2
    assert training["speed_settings"]["processes"].startswith("2, DistributedDataParallel over gloo")
    # each optimizer step took one batch per process: half the steps of a single process over the same data
    batches = math.ceil(results["split_sizes"]["train"] / (p["batch_size"] * 2))
    assert training["global_step"] == math.ceil(batches / p["grad_accum"]) * p["epochs"], (training["global_step"], batches)
    assert results["metrics"]["test"], "the test split was scored"
    assert results["reload_check"]["outputs"], "the saved model was reloaded and run"
