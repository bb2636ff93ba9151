"""Execute notebooks in warm worker processes, for the smoke suite.

A notebook under papermill starts a kernel and imports torch, transformers and datasets (5-8 s of the 2 cores) before its
first line of work; across the 19 notebooks that was most of the suite. Here each of two worker processes (one thread
each, so two share the two cores) pays the imports once and then runs notebook after notebook, each in a fresh IPython
shell inside the worker (`ftrecipes.runner.execute_in_process`, on execnb, the executor nbdev uses), with papermill's
rules: parameters injected after the `parameters` cell, `skip-execution` cells skipped, the notebook folder as the
working directory. `ftrecipes run`, the resume test and the quality tier still run notebooks through papermill."""
import os
import re
import time
from unittest.mock import patch
from multiprocessing import get_context
from concurrent.futures import ProcessPoolExecutor

ANSI = re.compile(r"\x1b\[[0-9;]*m")


def warm_up():
    "Import, once per worker, what every notebook imports."
    import torch
    torch.set_num_threads(1)
    import matplotlib.pyplot  # noqa: F401
    import datasets, evaluate, transformers  # noqa: F401
    from transformers import Trainer  # noqa: F401  (the slow one: accelerate, the trainer machinery)
    import ftrecipes.training, ftrecipes.metrics, ftrecipes.data, ftrecipes.saving, ftrecipes.recipes, ftrecipes.runner  # noqa: F401
    # The pipelines ftrecipes registers, registered now by their modules. Otherwise a notebook that defines them
    # (08_seq2seq, 08_extractive_qa) registers its own classes in this worker's transformers, and when that notebook's
    # namespace is cleared, a later notebook's pipeline("summarization") finds their functions' globals gone.
    import ftrecipes.seq2seq, ftrecipes.extractive_qa  # noqa: F401


def _error_outputs(executed) -> str:
    "The traceback a failed cell left in the executed notebook."
    import json
    try: nb = json.loads(open(executed).read())
    except (OSError, ValueError): return ""
    errors = [o for c in nb.get("cells", []) for o in c.get("outputs", []) if o.get("output_type") == "error"]
    return "\n".join(ANSI.sub("", "\n".join(o.get("traceback", []))) for o in errors)


def execute(nb_path, executed, params=None) -> dict:
    "Run one notebook in this worker; never raises: the outcome, the error with its traceback, and the seconds."
    from ftrecipes.runner import execute_in_process
    os.chdir(os.path.dirname(nb_path))
    start = time.perf_counter()
    try:
        execute_in_process(nb_path, executed, params)
        ok, log = True, ""
    except BaseException as e:  # a failing notebook must not take the worker down
        ok, log = False, f"{type(e).__name__}: {e}\n{_error_outputs(executed)}"
    return dict(ok=ok, log=log[-6000:], seconds=time.perf_counter() - start)


def run_recipe_job(task, params, output_dir, cwd=None) -> dict:
    "`ftrecipes run TASK` in this worker (`run_recipe(in_process=True)`: the same parameter checks and output folder); never raises. `error` is what the command prints after 'ftrecipes: error: ', `cli_error` whether the command reports it that way."
    from ftrecipes.runner import RecipeError, run_recipe
    if cwd: os.chdir(cwd)
    start = time.perf_counter()
    try:
        run_recipe(task, params, output_dir, in_process=True)
        ok, error, cli_error = True, "", False
    except BaseException as e:
        ok, error, cli_error = False, str(e), isinstance(e, (RecipeError, ValueError, FileNotFoundError))
        if not cli_error: error = f"{type(e).__name__}: {e}"
    return dict(ok=ok, error=error, cli_error=cli_error, seconds=time.perf_counter() - start)


def run_all(jobs: list, workers: int = 2, job=execute) -> list:
    "Run `jobs` (argument tuples of `job`: by default notebook, executed path, parameters) on `workers` warm processes with one thread each."
    one_thread = dict(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", PYTHONWARNINGS="ignore",
                      MPLBACKEND="agg")
    with patch.dict(os.environ, one_thread), ProcessPoolExecutor(workers, mp_context=get_context("spawn"), initializer=warm_up) as pool:
        futures = [pool.submit(job, *args) for args in jobs]
        return [f.result() for f in futures]
