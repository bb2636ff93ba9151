"""The speed benchmark keeps working: benchmarks/recipe_speed.py at its CPU size (--small: tiny models, short runs) for
one recipe of each kind of Trainer. Its numbers mean nothing at this size; the test checks that both sides of every
comparison train and that the recipe side reports the settings it chose. The numbers come from real-size runs."""
import json
import subprocess
import sys

import pytest
from conftest import ROOT, subprocess_env

RECIPES = ["sentiment", "summarization", "text_generation", "image_classification"]


def test_recipe_speed_benchmark_runs_both_sides_at_small_size(tmp_path):
    out = tmp_path/"speed.json"
    cmd = [sys.executable, str(ROOT/"benchmarks"/"recipe_speed.py"), "--small", "--steps", "3", "--warmup", "1",
           "--recipes", ",".join(RECIPES), "--out", str(out)]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=subprocess_env(threads=2), timeout=600)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    runs = json.loads(out.read_text())["recipes"]
    assert set(runs) == {"sentiment", "summarization", "text_generation:instruction", "text_generation:text",
                         "image_classification"}
    for name, r in runs.items():
        assert "ratio" in r, f"{name}: {r}"
        for role in ("baseline", "recipe"):
            assert r[role]["samples_per_s"] > 0 and r[role]["model_flops"] > 0, (name, role)
        assert r["recipe"]["speed_settings"]["optimizer"].startswith("AdamW"), name
    # dynamic padding with length-grouped batches against the examples' padding to the maximum length
    assert runs["sentiment"]["recipe"]["padding_waste"] < runs["sentiment"]["baseline"]["padding_waste"] / 2


def test_cpu_precision_benchmark_times_both_precisions_at_small_size(tmp_path):
    "benchmarks/cpu_precision.py (the measurement behind pick_precision on a CPU) runs; at tiny sizes its ratios mean nothing."
    out = tmp_path/"precision.json"
    cmd = [sys.executable, str(ROOT/"benchmarks"/"cpu_precision.py"), "--small", "--repeats", "1", "--out", str(out)]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=subprocess_env(threads=2), timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    rows = json.loads(out.read_text())["rows"]
    assert len(rows) == 7 and all(r["fp32_s"] > 0 and r["bf16_s"] > 0 for r in rows)
    generating = [r for r in rows if r["model"].startswith(("T5", "Llama"))]
    assert len(generating) == 2 and all(r["generate_fp32_s"] > 0 and r["generate_bf16_s"] > 0 for r in generating)
    depthwise = [r for r in rows if r["model"].startswith(("tf_efficientnet_lite0", "mobilenetv3", "convnext"))]
    assert len(depthwise) == 3 and all(r["chosen"] == "fp32" for r in depthwise)
    # the tiny text models (width 64) are below the width floor (128): fp32 on every CPU
    text = [r for r in rows if r["model"].startswith(("BERT", "T5", "Llama"))]
    assert len(text) == 3 and all(r["width"] == 64 and r["chosen"] == "fp32" for r in text)


def test_ddp_find_unused_benchmark_times_both_ways_at_small_size(tmp_path):
    "benchmarks/ddp_find_unused.py (the measurement behind choose_find_unused) runs under torchrun; at tiny sizes its ratios mean nothing."
    out = tmp_path/"ddp.json"
    cmd = [sys.executable, str(ROOT/"benchmarks"/"ddp_find_unused.py"), "--small", "--steps", "1", "--rounds", "1",
           "--batch", "4", "--length", "16", "--out", str(out)]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=subprocess_env(threads=1), timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    result = json.loads(out.read_text())
    assert result["processes"] == 2 and result["backend"] == "gloo"
    assert [r["model"] for r in result["rows"]] == ["BERT, tiny", "T5, tiny", "Llama, tiny", "Llama, tiny + LoRA"]
    assert all(r["search_s"] > 0 and r["no_search_s"] > 0 for r in result["rows"])


GPU_CHECKS = ROOT/"benchmarks"/"gpu_checks.py"
LATER_STEPS = ["speed_priority", "recipes_end_to_end", "oom_backoff", "speed_rest", "compiled_text"]


def test_gpu_checks_keeps_to_its_budget_and_names_the_steps_left_for_a_second_call(tmp_path):
    "A budget that the preflight alone spends: nothing else starts, and the summary names every step for `--only`."
    proc = subprocess.run([sys.executable, str(GPU_CHECKS), "--out", str(tmp_path), "--small", "--budget", "25"],
                          capture_output=True, text=True, env=subprocess_env(threads=2), timeout=120)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    record = json.loads((tmp_path/"gpu_checks.json").read_text())
    assert record["steps"][0]["name"] == "preflight" and record["steps"][0]["status"] == "ok", record["steps"][0]
    assert record["preflight"]["transformers"] and "device=" in record["preflight"]["environment"]
    assert [s["name"] for s in record["steps"][1:]] == LATER_STEPS
    assert all(s["status"] == "not run: the budget was spent" for s in record["steps"][1:])
    assert f"--only {','.join(LATER_STEPS)}" in proc.stdout
    assert (tmp_path/"gpu_checks.log").read_text().count("PREFLIGHT {") == 1


def test_gpu_checks_runs_a_recipe_end_to_end_and_returns_few_files(tmp_path):
    "The end-to-end step runs a recipe's smoke preset in process (train, evaluate, save, reload) and records it; the out-of-memory step backs off."
    cmd = [sys.executable, str(GPU_CHECKS), "--out", str(tmp_path/"out"), "--small", "--only", "recipes_end_to_end,oom_backoff",
           "--e2e-tasks", "sentiment", "--work", str(tmp_path/"work")]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=subprocess_env(threads=2), timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    record = json.loads((tmp_path/"out"/"gpu_checks.json").read_text())
    assert [(s["name"], s["status"]) for s in record["steps"]] == [("preflight", "ok"), ("recipes_end_to_end", "ok"),
                                                                   ("oom_backoff", "ok")]
    # the out-of-memory step (simulated on a CPU): batch 64 halved to 8, the same effective batch, 2 steps trained
    oom = record["steps"][2]["oom"]
    assert [b["batch_size"] for b in oom["backoff"]] == [64, 32, 16] and (oom["final_batch"], oom["grad_accum"]) == (8, 8)
    assert oom["global_step"] == 2
    run = record["end_to_end"]["sentiment"]
    assert run["ok"] and run["reloaded"] and 0 <= run["test"]["accuracy"] <= 100, run
    assert run["compile"].startswith("off") and run["speed_settings"]["optimizer"].startswith("AdamW")
    assert (tmp_path/"work"/"sentiment"/"results.json").exists()
    # what comes back from a lent machine is a handful of files: nothing but the log and the JSON files in --out
    assert sorted(p.name for p in (tmp_path/"out").iterdir()) == ["e2e.json", "gpu_checks.json", "gpu_checks.log"]


def test_gpu_checks_stops_a_step_at_its_time_limit_with_what_it_started(tmp_path):
    "A step past its limit is killed with its process group and reported as stopped, not as failed."
    import importlib.util
    spec = importlib.util.spec_from_file_location("gpu_checks", GPU_CHECKS)
    gpu_checks = importlib.util.module_from_spec(spec); spec.loader.exec_module(gpu_checks)
    child = "import subprocess, sys, time; subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)']); print('started', flush=True); time.sleep(60)"
    log = gpu_checks.Log(tmp_path/"log.txt")
    result = gpu_checks.run_step([sys.executable, "-c", child], {}, 3, log)
    assert result["status"] == "stopped at its time limit" and result["wall_s"] < 30, result
    assert "started" in (tmp_path/"log.txt").read_text()


def _sentiment_benchmark():
    import importlib.util
    spec = importlib.util.spec_from_file_location("sentiment_vs_plain_trainer", ROOT/"benchmarks"/"sentiment_vs_plain_trainer.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_sentiment_benchmark_runs_the_recipe_as_a_new_user_types_it_on_data_of_their_own():
    "benchmarks/sentiment_vs_plain_trainer.py takes `real:NAME` or a file; the recipe side is the command a new user types."
    bench = _sentiment_benchmark()
    data = bench.data_file("real:tweets")
    assert data.is_file() and data.read_text().splitlines()[0].split("\t") == ["id", "valence", "text"]
    assert bench.data_file("reviews.tsv").name == "reviews.tsv"
    cmd = bench.recipe_command(data, "out", [])
    assert cmd[:3] == ["ftrecipes", "run", "sentiment"] and f"data={data}" in cmd
    assert "preset=published" not in " ".join(cmd) and "label_threshold=0" in cmd  # preset auto: laptop on a CPU


@pytest.mark.parametrize("installed", [False, True])
def test_the_laptop_preset_stops_early_on_data_of_your_own(installed, tmp_path, monkeypatch):
    "Your data keeps the epochs of the data the preset would pick (6 in a pip install): early stopping makes them a ceiling."
    from types import SimpleNamespace
    from ftrecipes.sentiment import sentiment_presets
    if installed: monkeypatch.setenv("FTRECIPES_DATA", str(tmp_path))  # no repository data/, as after pip install
    for hub in (False, True):
        laptop, smoke = (sentiment_presets(SimpleNamespace(hub=hub))[k] for k in ("laptop", "smoke"))
        assert laptop["early_stopping_patience"] >= 1 and laptop["epochs"] >= 2, laptop
        assert smoke.get("early_stopping_patience", 0) == 0, smoke  # smoke: machinery only, every epoch
