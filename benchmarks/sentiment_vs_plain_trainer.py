"""Benchmark: the sentiment recipe against a plain Trainer script, side by side, same data, same split.

    python benchmarks/sentiment_vs_plain_trainer.py [path/to/movie_snippets.tsv]  (default: the repository's data/)

Runs the baseline (plain_trainer_sentiment.py) and then `ftrecipes run sentiment` with the quality-tier
parameters, one after the other on the same machine, and prints test accuracy, wall time and the
ratios. Minutes on a CPU; not part of the test suite."""
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent/"tests"))
from test_quality import QUALITY_PARAMS  # noqa: E402  (one definition of the recipe's quality setup)
from ftrecipes.corpora import corpus_path  # noqa: E402
from ftrecipes.parameters import cli_args  # noqa: E402

data = Path(sys.argv[1]) if len(sys.argv) > 1 else corpus_path("movie_snippets")
env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "HF_EVALUATE_OFFLINE": "1"}

start = time.perf_counter()
base = subprocess.run([sys.executable, str(HERE/"plain_trainer_sentiment.py"), str(data)], capture_output=True, text=True, env=env)
if base.returncode: sys.exit(base.stderr[-3000:])
baseline = json.loads(base.stdout.strip().splitlines()[-1])
baseline["command_s"] = round(time.perf_counter() - start, 1)

with tempfile.TemporaryDirectory() as out:
    args = ["ftrecipes", "run", "sentiment", "-q", "-o", f"{out}/run", "-p", "preset=published", "-p", f"data={data}"]
    args += cli_args(QUALITY_PARAMS)
    start = time.perf_counter()
    rec = subprocess.run(args, capture_output=True, text=True, env=env)
    if rec.returncode: sys.exit(rec.stderr[-3000:])
    r = json.loads(Path(f"{out}/run/results.json").read_text())
    recipe = dict(test_accuracy=round(r["metrics"]["test"]["accuracy"], 2), wall_time_s=r["wall_time_s"],
                  training_s=r["training"]["wall_time_s"], command_s=round(time.perf_counter() - start, 1))

print(f"{'':<22}{'test accuracy':>14}{'wall s':>10}{'command s':>11}")
print(f"{'plain Trainer script':<22}{baseline['test_accuracy']:>14.2f}{baseline['wall_time_s']:>10.1f}{baseline['command_s']:>11.1f}")
print(f"{'ftrecipes sentiment':<22}{recipe['test_accuracy']:>14.2f}{recipe['wall_time_s']:>10.1f}{recipe['command_s']:>11.1f}")
print(f"ratios (recipe / plain): accuracy {recipe['test_accuracy'] / baseline['test_accuracy']:.3f}, "
      f"wall time {recipe['wall_time_s'] / baseline['wall_time_s']:.3f}, command {recipe['command_s'] / baseline['command_s']:.3f}")
print(json.dumps(dict(baseline=baseline, recipe=recipe)))
