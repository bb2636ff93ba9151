"""Run the notebooks and store their outputs in place, for the docs site and for readers on GitHub.

    python tools/run_notebooks.py                    # every notebook in nbs/, then the home page
    python tools/run_notebooks.py 10_sentiment 12_ner index --jobs 1

Each notebook runs with papermill in a fresh kernel, as a user would run it, with its parameters cell as committed
(`preset="auto"`: the published setup on a CUDA GPU with the Hub, the `laptop` preset otherwise; each recipe prints
what it used and ends with a provenance line). A recipe runs in a temporary folder, so its `runs/` never mixes with
yours; its results summary (no machine paths) is written to `nbs/results/TASK.json`, where the home page's table
reads it. Outputs are written back only when every cell ran and the sources are unchanged; paths of this machine
in the outputs (the Python installation, the temporary folders, the home folder) are replaced by placeholders.
Library progress bars and transformers' informational logs are switched off in the kernels (QUIET_LIBRARIES).
`nbdev-clean` runs at the end, as for any commit.
"""
import argparse
import json
import os
import re
import site
import subprocess
import sys
import sysconfig
import tempfile
import time
import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import nbformat
import papermill as pm

ROOT = Path(__file__).resolve().parents[1]
NBS = ROOT/"nbs"
RESULTS = NBS/"results"
OFFLINE_VARS = ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "HF_EVALUATE_OFFLINE", "TRANSFORMERS_OFFLINE")


def notebook_order() -> list:
    "Every notebook of nbs/ in the sidebar's order, with the home page last (its table reads the recipes' results)."
    nbs = sorted(p.stem for p in NBS.glob("*.ipynb") if p.stem != "index")
    return nbs + ["index"]


def machine_paths(workdir: Path) -> list:
    "(path, placeholder) pairs for this machine's paths, longest first, so outputs say `<site-packages>/timm`."
    pairs = [(p, "<site-packages>") for p in {*site.getsitepackages(), sysconfig.get_paths()["purelib"],
                                              site.getusersitepackages()}]
    pairs += [(str(workdir), "."), (str(NBS), "."), (str(ROOT), "<repository>"), (sys.prefix, "<python>"),
              (tempfile.gettempdir(), "<tmp>"), (str(Path.home()), "~")]
    pairs = [(str(Path(p).resolve()) if Path(p).exists() else str(p), r) for p, r in pairs] + pairs
    return sorted({(p.rstrip("/"), r) for p, r in pairs if p and p != "/"}, key=lambda x: -len(x[0]))


def scrub(text: str, pairs: list) -> str:
    for path, placeholder in pairs:  # a whole path only: /tmp, not the start of /tmpab12
        text = re.sub(re.escape(path) + r"(?![\w.-])", lambda m: placeholder, text)
    return text


# What the stored outputs leave out, as the recipes' quiet_libraries does in a session: progress bars (a Jupyter
# progress widget is stored without its state, so a page shows it frozen at 0%) and transformers' informational logs
# (the load report listing a new head's weights as MISSING). Warnings from our own calls are fixed at their source; the
# Trainer's progress table stays (make_training_args asks for it), and so does anything a cell prints.
QUIET_LIBRARIES = {
    "HF_DATASETS_DISABLE_PROGRESS_BARS": "1",  # datasets: map, filter, "Resolving data files"
    "HF_HUB_DISABLE_PROGRESS_BARS": "1",  # huggingface_hub's bars, which transformers' "Loading weights" bar follows
    "TRANSFORMERS_VERBOSITY": "error",  # the load report is logged as a warning
}


# The kernel's own start-up log lands in the first cell's stderr: it is about this kernel, not the notebook.
KERNEL_LOG = re.compile(r"^\[IPKernelApp\] WARNING \|.*\n?", re.M)

WIDGET = "application/vnd.jupyter.widget-view+json"

def tidy(nb):
    "Drop what papermill adds that is not the notebook's: run metadata, empty tags, outputs on markdown and raw cells."
    nb.metadata.pop("papermill", None)
    # the kernel's language_info names this machine's Python version; JupyterLab needs only the name (without one it adds
    # `{"name": ""}` as it opens the notebook, which then shows unsaved changes)
    nb.metadata["language_info"] = {"name": nb.metadata.get("language_info", {}).get("name") or "python"}
    # widget state kept from an earlier run, when this run displayed no widget
    if not any(WIDGET in out.get("data", {}) for cell in nb.cells for out in cell.get("outputs", [])):
        nb.metadata.pop("widgets", None)
    for cell in nb.cells:
        cell.metadata.pop("papermill", None)
        if not cell.metadata.get("tags", True): del cell.metadata["tags"]
        if cell.cell_type != "code":
            for key in ("outputs", "execution_count"): cell.pop(key, None)


def coalesce_streams(nb):
    "One output per run of stdout (or stderr) text, as Jupyter shows it: a streamed answer is not a token per line."
    from nbconvert.preprocessors.coalescestreams import CoalesceStreamsPreprocessor
    CoalesceStreamsPreprocessor().preprocess(nb, {})


def scrub_outputs(nb, pairs: list):
    "Replace machine paths in every text output (streams, text/plain, text/html, markdown, tracebacks)."
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            if "text" in out: out["text"] = scrub(KERNEL_LOG.sub("", out["text"]), pairs)
        cell["outputs"] = [o for o in cell.get("outputs", []) if o.get("output_type") != "stream" or o["text"]]
        for out in cell.get("outputs", []):
            if "traceback" in out: out["traceback"] = [scrub(t, pairs) for t in out["traceback"]]
            for mime, value in out.get("data", {}).items():
                if mime.startswith("text/") and isinstance(value, str): out["data"][mime] = scrub(value, pairs)


def run_notebook(name: str) -> tuple:
    "Execute nbs/NAME.ipynb; return (name, seconds, error or None)."
    src = NBS/f"{name}.ipynb"
    recipe = re.match(r"^1\d_", name) is not None
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix=f"ftrecipes-{name}-") as tmp:
        workdir = Path(tmp) if recipe else NBS
        out = Path(tmp)/f"{name}.executed.ipynb"
        try:
            pm.execute_notebook(str(src), str(out), cwd=str(workdir), kernel_name="python3", progress_bar=False,
                                log_output=False, request_save_on_cell_execute=False)
        except Exception as e:
            return name, time.perf_counter() - t0, f"{type(e).__name__}: {str(e).strip().splitlines()[-1][:300]}"
        executed = nbformat.read(out, as_version=4, capture_validation_error={})  # papermill's extras, removed below
        committed = nbformat.read(src, as_version=4)
        if [c.source for c in executed.cells] != [c.source for c in committed.cells]:
            return name, time.perf_counter() - t0, "the notebook changed while it ran: not written back"
        tidy(executed)
        coalesce_streams(executed)
        scrub_outputs(executed, machine_paths(workdir))
        try:
            if recipe: save_summary(name, workdir)
        except (OSError, ValueError, KeyError) as e:
            return name, time.perf_counter() - t0, f"its results could not be read: {e}"
        nbformat.write(executed, src)
    return name, time.perf_counter() - t0, None


def save_summary(name: str, workdir: Path):
    "Write the summary of the recipe's results.json (the newest under workdir/runs) to nbs/results/TASK.json."
    from ftrecipes.recipes import results_summary
    found = sorted(workdir.glob("runs/*/results.json"), key=lambda p: p.stat().st_mtime)
    if not found: raise FileNotFoundError(f"the run wrote no results.json under {workdir/'runs'}")
    results = json.loads(found[-1].read_text())
    RESULTS.mkdir(exist_ok=True)
    (RESULTS/f"{results['task']}.json").write_text(json.dumps(results_summary(results), indent=1) + "\n")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("notebooks", nargs="*", help="notebook names without .ipynb (default: all, home page last)")
    ap.add_argument("--jobs", type=int, default=2, help="notebooks run at once (default 2)")
    ap.add_argument("--threads", type=int, default=None, help="CPU threads per notebook (default: cores / jobs)")
    args = ap.parse_args(argv)
    names = args.notebooks or notebook_order()
    missing = [n for n in names if not (NBS/f"{n}.ipynb").exists()]
    if missing: ap.error(f"no such notebook in nbs/: {', '.join(missing)}")
    threads = args.threads or max(1, (os.cpu_count() or 1) // args.jobs)
    # every kernel inherits these: the threads each notebook may use, where the recipes are, and quiet libraries
    os.environ.update({v: str(threads) for v in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")}, FTRECIPES_NBS=str(NBS),
                      **QUIET_LIBRARIES)
    last = ["index"] if "index" in names else []
    failed = []
    # processes, not threads: papermill's `cwd` changes the working directory of the whole process
    with ProcessPoolExecutor(max_workers=args.jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
        for name, secs, err in pool.map(run_notebook, [n for n in names if n != "index"]):
            print(f"{name}: {'FAILED ' + err if err else 'ok'} ({secs:.0f} s)", flush=True)
            if err: failed.append(name)
    for name in last:
        name, secs, err = run_notebook(name)
        print(f"{name}: {'FAILED ' + err if err else 'ok'} ({secs:.0f} s)", flush=True)
        if err: failed.append(name)
    subprocess.run(["nbdev-clean"], cwd=ROOT, check=True)
    if failed: print(f"not updated (they failed): {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
