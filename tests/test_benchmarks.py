"""The speed benchmark keeps working: benchmarks/recipe_speed.py at its CPU size (--small: tiny models, short runs) for
one recipe of each kind of Trainer. Its numbers mean nothing at this size; the test checks that both sides of every
comparison train and that the recipe side reports the settings it chose. The numbers come from real-size runs."""
import json
import subprocess
import sys

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
