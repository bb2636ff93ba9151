"""Benchmark: the sentiment recipe as a new user runs it on their own data, against a plain Trainer script, same data, same split.

    python benchmarks/sentiment_vs_plain_trainer.py real:tweets            # a real corpus of the repository's data/
    python benchmarks/sentiment_vs_plain_trainer.py path/to/reviews.tsv    # or a file: id, valence (-4..4), text
    python benchmarks/sentiment_vs_plain_trainer.py real:tweets --installed  # the recipe as a pip install sees it
    python benchmarks/sentiment_vs_plain_trainer.py real:tweets -p epochs=6  # more -p values for the recipe

Runs the baseline (plain_trainer_sentiment.py: 2 epochs) and then what a new user types,

    ftrecipes run sentiment -p data=FILE -p text_column=text -p label_column=valence -p label_threshold=0

(preset auto, which is `laptop` on a CPU), one after the other on the same machine, and prints test accuracy with
its 95% bootstrap interval, wall time and the ratios. Both sides cut the same 80/10/10 split (seed 0, stratified).
`--installed` hides the repository's data/ from the recipe, so its presets are those of a pip install (which has
no movie snippets to pick). Minutes on a CPU; not part of the test suite."""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from ftrecipes.corpora import corpus_path

HERE = Path(__file__).resolve().parent
NEW_USER = ["-p", "text_column=text", "-p", "label_column=valence", "-p", "label_threshold=0"]


def data_file(source: str) -> Path:
    "A `real:NAME` corpus or a file, as the path both sides load."
    return Path(corpus_path(source[len("real:"):])) if source.startswith("real:") else Path(source)


def plain(data: Path, env: dict) -> dict:
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, str(HERE/"plain_trainer_sentiment.py"), str(data)],
                          capture_output=True, text=True, env=env)
    if proc.returncode: sys.exit(proc.stderr[-3000:])
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    return dict(out, command_s=round(time.perf_counter() - start, 1))


def recipe_command(data: Path, out: str, extra: list) -> list:
    return ["ftrecipes", "run", "sentiment", "-q", "-o", out, "-p", f"data={data}", *NEW_USER, *extra]


def validation_by_epoch(run: Path) -> list:
    "[epoch, validation accuracy] of every evaluation, from the last checkpoint's trainer_state.json."
    states = sorted(run.glob("**/trainer_state.json"), key=lambda f: json.loads(f.read_text())["global_step"])
    if not states: return []
    return [[round(h["epoch"], 2), round(h["eval_accuracy"], 2)] for h in json.loads(states[-1].read_text())["log_history"]
            if "eval_accuracy" in h]


def recipe(data: Path, env: dict, extra: list, installed: bool, shown: str) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        if installed: env = {**env, "FTRECIPES_DATA": tmp}  # an empty data folder: no repository corpora, as after pip install
        cmd = recipe_command(data, f"{tmp}/run", extra)
        start = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
        if proc.returncode: sys.exit(proc.stdout[-2000:] + proc.stderr[-3000:])
        r = json.loads(Path(f"{tmp}/run/results.json").read_text())
        r["validation_accuracy_by_epoch"] = validation_by_epoch(Path(f"{tmp}/run"))
    test, p, t = r["metrics"]["test"], r["parameters"], r["training"]
    shown_cmd = recipe_command(shown, "", extra)  # the command as typed, with the data as given
    return dict(test_accuracy=round(test["accuracy"], 2), test_accuracy_ci95=[round(v, 2) for v in test["accuracy_ci95"]],
                wall_time_s=r["wall_time_s"], training_s=t["wall_time_s"], command_s=round(time.perf_counter() - start, 1),
                preset=p["preset"], epochs=p["epochs"], early_stopping_patience=p["early_stopping_patience"],
                epochs_run=len(t.get("history", [])), kept_epoch=next((h["epoch"] for h in t.get("history", []) if h["kept"]), None),
                precision=r.get("environment", {}).get("precision"), history=t.get("history", []),
                validation_accuracy_by_epoch=r["validation_accuracy_by_epoch"], test_rows=r["split_sizes"]["test"],
                command=" ".join(shown_cmd[:3] + shown_cmd[6:]))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("data", nargs="?", default="real:movie_snippets", help="a `real:NAME` corpus or a file (id, valence, text)")
    ap.add_argument("--installed", action="store_true",
                    help="hide the repository's data/ from the recipe (a pip install's presets)")
    ap.add_argument("-p", dest="params", action="append", default=[], help="another KEY=VALUE for the recipe (repeatable)")
    ap.add_argument("--out", help="also write the numbers to this JSON file")
    ap.add_argument("--baseline",
                    help="reuse the plain script's side from an earlier --out file of the same data (said in the output)")
    a = ap.parse_args()
    data = data_file(a.data)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "HF_EVALUATE_OFFLINE": "1"}
    reused = json.loads(Path(a.baseline).read_text()) if a.baseline else None
    if reused and reused["data"] != a.data: sys.exit(f"--baseline {a.baseline} measured {reused['data']}, not {a.data}.")
    base = reused["baseline"] if reused else plain(data, env)
    rec = recipe(data, env, [x for kv in a.params for x in ("-p", kv)], a.installed, a.data)
    assert base["test_rows"] == rec["test_rows"], (base["test_rows"], rec["test_rows"])
    ci = lambda r: "{:.2f} to {:.2f}".format(*r["test_accuracy_ci95"]) if "test_accuracy_ci95" in r else "-"
    print(f"data: {a.data} ({rec['test_rows']} test rows){'; recipe as installed (no data/)' if a.installed else ''}")
    print(f"recipe: {rec['command']}  (preset {rec['preset']}: epochs {rec['epochs']}, early_stopping_patience "
          f"{rec['early_stopping_patience']}, precision {rec['precision']}; ran {rec['epochs_run']} epochs, "
          f"kept epoch {rec['kept_epoch']})")
    if reused: print("plain script: measured earlier (--baseline), not in this run")
    print(f"{'':<22}{'test accuracy':>14}{'95% interval':>18}{'wall s':>9}{'command s':>11}")
    for name, r in (("plain Trainer script", base), ("ftrecipes sentiment", rec)):
        print(f"{name:<22}{r['test_accuracy']:>14.2f}{ci(r):>18}{r['wall_time_s']:>9.1f}{r['command_s']:>11.1f}")
    lo, hi = base["test_accuracy_ci95"]
    inside = lo <= rec["test_accuracy"] <= hi
    print(f"recipe - plain: accuracy {rec['test_accuracy'] - base['test_accuracy']:+.2f} points "
          f"({'inside' if inside else 'outside'} the plain script's interval); ratios (recipe / plain): "
          f"wall time {rec['wall_time_s'] / base['wall_time_s']:.2f}, command {rec['command_s'] / base['command_s']:.2f}")
    result = dict(data=a.data, installed=a.installed, baseline=base, baseline_reused=bool(reused), recipe=rec,
                  accuracy_inside_plain_interval=inside, wall_time_ratio=round(rec["wall_time_s"] / base["wall_time_s"], 3))
    if a.out: Path(a.out).write_text(json.dumps(result, indent=1))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
