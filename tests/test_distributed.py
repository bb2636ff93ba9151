"""Several processes without code changes: a recipe under torchrun with two CPU processes on the gloo backend, the
code path several GPUs take (DistributedDataParallel, one process per device). Smoke size: it tests the machinery."""
import json
import math
import subprocess
import sys

from conftest import subprocess_env


def test_smoke_sentiment_under_torchrun_with_two_cpu_processes(ftrecipes_cmd, tmp_path):
    "What the docs say to type, `torchrun --nproc_per_node N --no-python ftrecipes run TASK`, with N=2 CPU processes."
    out = tmp_path/"run"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "--no-python",
           ftrecipes_cmd, "run", "sentiment", "-p", "preset=smoke", "-o", str(out), "-q"]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=subprocess_env(threads=1), timeout=600)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    # both processes wrote into the one folder the main process chose, and only it wrote the outputs
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]
    assert {"results.json", "model", "sentiment.ipynb", "sentiment.rank1.ipynb"} <= {p.name for p in out.iterdir()}
    assert proc.stdout.count("saved model:") == 1, "one summary, from the main process"
    results = json.loads((out/"results.json").read_text())
    training, p = results["training"], results["parameters"]
    assert training["processes"] == 2 and results["environment"]["processes"] == 2
    assert "processes" in training["speed_settings"]
    # each optimizer step took one batch per process: half the steps of a single process over the same data
    per_epoch = math.ceil(results["split_sizes"]["train"] / (p["batch_size"] * 2))
    assert training["global_step"] == per_epoch * p["epochs"], (training["global_step"], per_epoch)
    assert results["metrics"]["test"]["accuracy"] is not None
    assert results["reload_check"]["outputs"], "the saved model was reloaded and run"
