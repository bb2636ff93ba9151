"""Every GPU measurement and CUDA-path check of the performance work, in one run that keeps to a time budget.

A GPU is often lent for minutes, not hours. This runs, in order of importance, each step in its own process with a
time limit cut to what is left of `--budget`, and writes what it found after every step, so that a run stopped at its
limit still returns every number it measured:

1. preflight: the versions, the GPU, and that ftrecipes and its dependencies import; nothing else runs without it.
2. speed of sentiment and text generation (both modes): `recipe_speed.py`, the plain fp32 Trainer against the recipe,
   at real sizes. These carry the MFU targets.
3. recipes end to end on the GPU: one recipe per kind of model, its smoke preset through `run_recipe` (in one
   process, no kernel), so that torch.compile, bf16, TF32, loader workers, pinned memory and padding to a multiple
   of 8 run through training, evaluation, saving and reloading (the speed benchmark trains only). Smoke runs are
   too short for make_trainer to compile on its own; `FTRECIPES_COMPILE=1` forces it for text generation and
   sentiment (`--e2e-compile`): evaluation, saving and reloading after a compiled run. Each compile costs about a
   minute even for a tiny model (on a CPU: 40-95 s a recipe), and the speed steps compile the other encoders and
   timm in training anyway; seq2seq never compiles (its evaluation generates text).
4. a real out-of-memory error at the first step (BERT-base at batch 64 x 512 under an allocator capped at 8 GiB):
   the run must halve the batch until it fits and train, which the CPU tests can only simulate.
5. speed of question answering, NER, image classification, summarization and translation.
6. text generation's text mode with torch.compile forced: its published run is too short for make_trainer to compile
   (about 146 optimizer steps), so step 2 measures it without; this measures the compiled steady state.
7. with two or more GPUs: `ddp_find_unused.py` over NCCL.

Steps the budget leaves out are named at the end; run them in a second call with `--only`. Files written to --out
(at most eight): gpu_checks.log (everything printed), gpu_checks.json (each step's outcome, the recipes' end-to-end
results and every target), and one JSON per speed step.

    python benchmarks/gpu_checks.py --out bench --budget 540
    python benchmarks/gpu_checks.py --out bench --only speed_rest,compiled_text
    OMP_NUM_THREADS=2 python benchmarks/gpu_checks.py --out /tmp/bench --small   # CPU rehearsal: tiny models

`--small` rehearses every step on a CPU (tiny models in the speed steps, no compile forced); its numbers mean nothing.
On a machine without a package index, `tools/offline_wheels.py` makes the wheels that ftrecipes needs there.
"""
import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SPEED = str(ROOT/"benchmarks"/"recipe_speed.py")
# one recipe per kind of model and Trainer: LoRA and generation after training, timm with channels-last, an encoder
# head, and a seq2seq model that trains in bf16 and generates. question_answering, ner and translation take the same
# paths (--e2e-tasks adds them).
E2E_TASKS = ["text_generation", "image_classification", "sentiment", "summarization"]
# compile forced where evaluation, saving and reloading after a compiled training run are not in the speed steps
# (those train the encoder heads and timm compiled too): a compile costs a minute or so per recipe, even for a tiny
# model. Never for seq2seq: its evaluation generates, so make_trainer keeps compile off for it.
E2E_COMPILE = ["text_generation", "sentiment"]
PREFLIGHT_IMPORTS = ["torch", "transformers", "datasets", "evaluate", "accelerate", "peft", "timm", "execnb",
                     "ftrecipes.training", "ftrecipes.causal_lm", "ftrecipes.recipes"]


def steps(a) -> list:
    "(name, seconds at most, command, environment additions), in order of importance."
    py, small = sys.executable, (["--small"] if a.small else [])
    out = Path(a.out)
    speed = lambda name, recipes, extra=(): [py, SPEED, "--recipes", recipes, "--out", str(out/f"{name}.json"), *small, *extra]
    me = [py, str(Path(__file__).resolve())]
    listed = [
        ("preflight", 120, me + ["--preflight"] + small, {}),
        ("speed_priority", 300, speed("speed_priority", "sentiment,text_generation"), {}),
        ("recipes_end_to_end", 300, me + ["--e2e-worker", ",".join(a.e2e_tasks), "--work", str(a.work),
                                          "--e2e-json", str(out/"e2e.json")] + (small or ["--compile", a.e2e_compile]),
         {}),
        ("oom_backoff", 120, me + ["--oom-worker", "--work", str(a.work)] + small, {}),
        ("speed_rest", 300, speed("speed_rest", "question_answering,ner,image_classification,summarization,translation"),
         {}),
        ("compiled_text", 180, speed("compiled_text", "text_generation:text"),
         {} if a.small else {"FTRECIPES_COMPILE": "1"}),
    ]
    if a.gpus >= 2:
        listed.append(("multi_gpu_ddp", 240, [py, str(ROOT/"benchmarks"/"ddp_find_unused.py"), "--out", str(out/"ddp.json")]
                       + small, {}))
    return listed


class Log:
    "Print and append to --out/gpu_checks.log."
    def __init__(self, path: Path): self.f = path.open("a")
    def __call__(self, text: str = ""):
        print(text, flush=True); self.f.write(text + "\n"); self.f.flush()


def run_step(cmd, extra_env, limit, log) -> dict:
    "Run one step in its own process group, stream its output, stop it (and what it started) at `limit` seconds."
    env = dict(os.environ, PYTHONUNBUFFERED="1", **extra_env)
    t0 = time.monotonic()
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
    import threading
    def stop():
        try: os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError: pass  # it ended on its own just now
    timer = threading.Timer(limit, stop)
    timer.start()
    lines = []
    try:
        for line in proc.stdout:
            log("  " + line.rstrip())
            if line.startswith(("PREFLIGHT ", "OOM ")): lines.append(line.strip())
        rc = proc.wait()
    finally: timer.cancel()
    wall = time.monotonic() - t0
    stopped = rc == -signal.SIGKILL and wall >= limit - 1
    found = {l.split(" ", 1)[0].lower(): json.loads(l.split(" ", 1)[1]) for l in lines}  # the workers' JSON lines
    return dict(rc=rc, wall_s=round(wall, 1), limit_s=round(limit),
                status="stopped at its time limit" if stopped else ("ok" if rc == 0 else "failed"), **found)


def collect(out: Path, record: dict):
    "The targets of every speed file and the end-to-end results, into the record."
    record["targets"], record["speed"] = {}, {}
    for f in sorted(out.glob("*.json")):
        if f.name in ("gpu_checks.json", "e2e.json"): continue
        try: data = json.loads(f.read_text())
        except json.JSONDecodeError: record["targets"][f.stem] = [dict(target=f"{f.name} unreadable", reached=False)]; continue
        for name, r in data.get("recipes", {}).items():
            key = f"{name} ({f.stem})"
            record["targets"][key] = r.get("targets") or [dict(target="failed", reached=False, errors=[
                v["error"] for v in r.values() if isinstance(v, dict) and "error" in v])]
            if "ratio" in r:
                record["speed"][key] = dict(ratio=round(r["ratio"], 2), compile=(r["recipe"].get("speed_settings") or {}).get("torch.compile"),
                                            **{role: dict({k: r[role].get(k) for k in ("samples_per_s", "real_tokens_per_s", "padding_waste",
                                                                                       "peak_memory_bytes", "warmup_seconds")},
                                                          mfu=r[role]["flops_per_s"] / data["ceiling_flops"])
                                               for role in ("baseline", "recipe")})
    if (out/"e2e.json").exists(): record["end_to_end"] = json.loads((out/"e2e.json").read_text())


def summary(record: dict, log):
    log("\nsummary")
    for s in record["steps"]:
        log(f"  {s['name']:20s} {s['status']}" + (f" ({s['wall_s']} s of {s['limit_s']})" if "wall_s" in s else ""))
    for key, checks in record.get("targets", {}).items():
        log(f"  {key:45s} " + "; ".join(f"{c['target']}: " + ("yes" if c["reached"] else "n/a" if c["reached"] is None else "NO")
                                        + (f" {c['errors']}" if c.get("errors") else "") for c in checks))
    oom = next((s["oom"] for s in record["steps"] if "oom" in s), None)
    if oom: log(f"  out of memory at the first step: batch " + " -> ".join(str(b["batch_size"]) for b in oom["backoff"])
                + f" -> {oom['final_batch']} (x{oom['grad_accum']} accumulated), then {oom['global_step']} steps trained")
    for task, r in record.get("end_to_end", {}).items():
        log(f"  end to end {task:22s} " + ("ok" if r.get("ok") else f"FAILED: {r.get('error')}")
            + (f"; {r.get('precision')}; compile {r.get('compile')}" if r.get("ok") else ""))
    e2e = next((s for s in record["steps"] if s["name"] == "recipes_end_to_end"), None)
    if e2e and "wall_s" in e2e:
        missing = [t for t in record.get("e2e_tasks", []) if t not in record.get("end_to_end", {})]
        if missing: log(f"  end to end, not reached: {', '.join(missing)} (--e2e-tasks {','.join(missing)})")
    left = [s["name"] for s in record["steps"] if s["status"].startswith("not run")]
    if left: log(f"  not run for lack of time: --only {','.join(left)}")


def preflight(small: bool):
    "Versions, the device, and the imports every later step needs."
    import importlib
    from importlib import metadata
    facts = {}
    for name in PREFLIGHT_IMPORTS:
        importlib.import_module(name)  # an ImportError here stops the run: the later steps would all fail
    for dist in ("torch", "transformers", "datasets", "evaluate", "accelerate", "peft", "timm", "triton", "numpy", "kernels"):
        try: facts[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError: facts[dist] = None
    import torch
    facts["cuda"] = torch.cuda.is_available()
    if facts["cuda"]:
        facts.update(gpus=torch.cuda.device_count(), gpu=torch.cuda.get_device_name(),
                     capability=".".join(map(str, torch.cuda.get_device_capability())),
                     bf16=torch.cuda.is_bf16_supported(), memory_gib=round(torch.cuda.get_device_properties(0).total_memory / 2**30, 1))
    from ftrecipes.environment import describe_environment
    facts["environment"] = describe_environment(check_hub=False, quiet=True).summary(before_model=True)
    print("PREFLIGHT " + json.dumps(facts))
    if not facts["cuda"] and not small: sys.exit("no CUDA GPU: the measurements need one (--small rehearses them on a CPU)")


def e2e_worker(tasks: list, work: Path, out: Path, compile: list):
    "Each recipe's smoke preset in this process, on whatever device there is; one entry per task in `out`."
    from ftrecipes.runner import run_recipe
    done = {}
    for task in tasks:
        if task in compile: os.environ["FTRECIPES_COMPILE"] = "1"
        else: os.environ.pop("FTRECIPES_COMPILE", None)
        t0 = time.monotonic()
        try:
            r = run_recipe(task, dict(preset="smoke"), output_dir=work/task, in_process=True)
            settings = r["training"].get("speed_settings", {})
            done[task] = dict(ok=True, wall_s=round(time.monotonic() - t0, 1), device=r["environment"].get("device"),
                              precision=settings.get("precision"), compile=settings.get("torch.compile"),
                              speed_settings=settings, test=r["metrics"].get("test"),
                              reloaded=bool((r.get("reload_check") or {}).get("outputs")))  # the saved model's own predictions
        except Exception as e:
            done[task] = dict(ok=False, wall_s=round(time.monotonic() - t0, 1), error=f"{type(e).__name__}: {e}")
        print(f"end to end {task}: " + ("ok" if done[task]["ok"] else done[task]["error"])
              + f" in {done[task]['wall_s']} s", flush=True)
        tmp = out.with_suffix(".tmp"); tmp.write_text(json.dumps(done, indent=1, default=str)); tmp.replace(out)  # whole or not at all
    if not all(r["ok"] for r in done.values()): sys.exit(1)


def oom_worker(work: Path, small: bool):
    """A real out-of-memory error at the first step: BERT-base at batch 64 x 512 tokens, under an allocator capped at
    8 GiB (torch.cuda.set_per_process_memory_fraction), must back off to a batch that fits and train. This checks
    what the CPU tests can only simulate: that a failed attempt's memory is freed before the next one."""
    import torch
    from datasets import Dataset
    from transformers import BertConfig, BertForSequenceClassification
    from ftrecipes.environment import pick_precision
    from ftrecipes.training import TrainConfig, make_trainer, train_and_time
    from ftrecipes.probes import prepare_trainer
    cuda = torch.cuda.is_available() and not small
    device = "cuda" if torch.cuda.is_available() else "cpu"
    cfg = BertConfig(num_labels=2) if cuda else BertConfig(hidden_size=64, num_hidden_layers=2, num_attention_heads=2,
                                                             intermediate_size=128, num_labels=2)
    model = BertForSequenceClassification(cfg)
    length, cap = (512, 8 * 2**30) if cuda else (32, None)
    g = torch.Generator().manual_seed(0)
    ds = Dataset.from_list([dict(input_ids=torch.randint(1000, 20000, (length,), generator=g).tolist(),
                                 attention_mask=[1] * length, labels=i % 2) for i in range(256)])
    if cuda: torch.cuda.set_per_process_memory_fraction(cap / torch.cuda.get_device_properties(0).total_memory)
    else:  # a CPU has no allocator to cap: raise PyTorch's own error for batches above 8 (the rehearsal)
        import functools
        forward = model.forward
        @functools.wraps(forward)  # the Trainer keeps the dataset columns that forward's signature names
        def capped(*args, **kwargs):
            ids = kwargs.get("input_ids", args[0] if args else None)
            if ids is not None and ids.shape[0] > 8: raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB.")
            return forward(*args, **kwargs)
        model.forward = capped
    precision = pick_precision(device, model)
    trainer = make_trainer(model, TrainConfig(batch_size=64, max_steps=2, group_by_length=False), str(work/"oom"), ds, None,
                           precision=precision, device=device, eval_strategy="no", save_strategy="no",
                           load_best_model_at_end=False)
    prepare_trainer(trainer)
    stats = train_and_time(trainer)
    backoff = stats.get("batch_backoff", [])
    print("OOM " + json.dumps(dict(cap_gib=cap and cap / 2**30, precision=precision, global_step=stats["global_step"],
                                   backoff=backoff, final_batch=trainer.args.per_device_train_batch_size,
                                   grad_accum=trainer.args.gradient_accumulation_steps,
                                   peak_gpu_memory_gib=stats.get("peak_gpu_memory_bytes", 0) / 2**30), default=str))
    if not backoff or stats["global_step"] != 2:
        sys.exit(f"expected a back-off and 2 optimizer steps; got {len(backoff)} back-offs and {stats['global_step']} steps")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", help="folder for the log and the JSON files")
    ap.add_argument("--budget", type=float, default=540, help="seconds for all steps together (default 540)")
    ap.add_argument("--only", default="", help="comma-separated step names (preflight always runs)")
    ap.add_argument("--small", action="store_true", help="CPU rehearsal: tiny models, compile not forced")
    ap.add_argument("--work", type=Path, default=None, help="scratch folder for the recipes' runs (default: a temporary one)")
    ap.add_argument("--e2e-tasks", default=",".join(E2E_TASKS))
    ap.add_argument("--preflight", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--e2e-worker", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--e2e-json", type=Path, default=None, help=argparse.SUPPRESS)
    ap.add_argument("--e2e-compile", default=",".join(E2E_COMPILE), help="recipes of the end-to-end step run with compile forced")
    ap.add_argument("--compile", default="", help=argparse.SUPPRESS)
    ap.add_argument("--oom-worker", action="store_true", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.preflight: return preflight(a.small)
    if a.oom_worker: return oom_worker(a.work, a.small)
    if a.e2e_worker is not None: return e2e_worker(a.e2e_worker.split(","), a.work, a.e2e_json, [t for t in a.compile.split(",") if t])
    if not a.out: ap.error("--out is needed")

    deadline = time.monotonic() + a.budget
    out = Path(a.out); out.mkdir(parents=True, exist_ok=True)
    a.work = a.work or Path(tempfile.mkdtemp(prefix="ftrecipes-gpu-checks-"))
    a.e2e_tasks = [t for t in a.e2e_tasks.split(",") if t]
    log = Log(out/"gpu_checks.log")
    record = dict(budget_s=a.budget, small=a.small, started=time.strftime("%Y-%m-%d %H:%M:%S"), e2e_tasks=a.e2e_tasks, steps=[])

    # preflight first, alone: it tells how many GPUs there are, which decides the last step
    a.gpus = 0
    names = {n for n in a.only.split(",") if n}
    for name, cap, cmd, extra_env in steps(a)[:1]:
        log(f"== {name}")
        result = run_step(cmd, extra_env, min(cap, deadline - time.monotonic()), log)
        if "preflight" in result: record["preflight"] = result.pop("preflight"); a.gpus = record["preflight"].get("gpus", 0)
        record["steps"].append(dict(name=name, **result))
    if record["steps"][0]["status"] != "ok":
        (out/"gpu_checks.json").write_text(json.dumps(record, indent=1))
        summary(record, log); sys.exit("preflight failed: nothing else was run")

    for name, cap, cmd, extra_env in steps(a)[1:]:
        if names and name not in names: continue
        left = deadline - time.monotonic()
        if left < 30:
            record["steps"].append(dict(name=name, status="not run: the budget was spent")); continue
        log(f"\n== {name} (at most {min(cap, left):.0f} s)" + "".join(f" {k}={v}" for k, v in extra_env.items()))
        record["steps"].append(dict(name=name, **run_step(cmd, extra_env, min(cap, left), log)))
        collect(out, record)
        (out/"gpu_checks.json").write_text(json.dumps(record, indent=1, default=str))
    collect(out, record)
    record["wall_s"] = round(a.budget - (deadline - time.monotonic()), 1)
    (out/"gpu_checks.json").write_text(json.dumps(record, indent=1, default=str))
    summary(record, log)
    if any(s["status"] != "ok" and not s["status"].startswith("not run") for s in record["steps"]): sys.exit(1)


if __name__ == "__main__":
    main()
