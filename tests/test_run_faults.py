"""Faults of a run as a whole, outside its data: two runs racing for one output folder, an output folder that cannot be
one, a rerun into the folder of a run that failed, and Ctrl-C in the middle of training (through papermill's kernel and
in this process). Smoke size: the tiny model on the bundled sample; these test the machinery."""
import json
import os
import shlex
import signal
import subprocess
import sys
import time
import warnings
from concurrent.futures import ThreadPoolExecutor
from multiprocessing import get_context
from pathlib import Path

import pytest

from conftest import subprocess_env
from ftrecipes.outputs import checkpoint_is_complete

SMOKE = ["-p", "preset=smoke"]


def _ftr(cmd, *args, threads=1):
    return subprocess.run([cmd, *args], capture_output=True, text=True, env=subprocess_env(threads))


def _race(base, rounds, barrier, queue, experiment=False):
    "One racer: each round, wait for the others, ask for the round's folder (a run's, or an experiment's), and write a results file into what it got."
    from ftrecipes.outputs import fresh_output_dir
    from ftrecipes.experiments import _experiment_dir
    import contextlib, io
    for r in range(rounds):
        barrier.wait()
        with contextlib.redirect_stdout(io.StringIO()):
            out = _experiment_dir(Path(base)/f"round{r}"/"E", "sentiment", "seeds") if experiment else fresh_output_dir(Path(base)/f"round{r}"/"F")
        time.sleep(0.2)  # the run trains before it writes its results
        (out/"results.json").write_text(str(os.getpid()))
        queue.put((r, str(out), os.getpid()))


@pytest.mark.parametrize("experiment", [False, True], ids=["run", "experiment"])
def test_processes_racing_for_one_output_folder_each_get_their_own(tmp_path, experiment):
    "Four processes ask for the same folder (a run's, or an experiment's) at the same moment, 25 times: never two in one folder, and no results overwritten."
    ctx, procs, rounds = get_context("spawn"), 4, 25
    barrier, queue = ctx.Barrier(procs), ctx.Queue()
    workers = [ctx.Process(target=_race, args=(str(tmp_path), rounds, barrier, queue, experiment)) for _ in range(procs)]
    for w in workers: w.start()
    got = [queue.get(timeout=120) for _ in range(procs * rounds)]
    for w in workers: w.join(30)
    for r in range(rounds):
        mine = [(out, pid) for rr, out, pid in got if rr == r]
        folders = [out for out, _ in mine]
        assert len(set(folders)) == procs, f"round {r}: {procs} runs shared folders {sorted(folders)}"
        for out, pid in mine:
            assert Path(out, "results.json").read_text() == str(pid), f"round {r}: {out} was overwritten by another run"


def test_two_runs_started_at_once_into_one_folder_keep_their_own_results(ftrecipes_cmd, tmp_path):
    "`for s in 1 2; do ftrecipes run sentiment -p seed=$s -o F & done`: two folders, each with its own seed's results."
    out = tmp_path/"F"
    def run(seed):
        return _ftr(ftrecipes_cmd, "run", "sentiment", *SMOKE, "-p", f"seed={seed}", "-p", "epochs=1", "-o", str(out), "-q")
    with ThreadPoolExecutor(2) as pool: procs = dict(zip((1, 2), pool.map(run, (1, 2))))
    saved = {}
    for seed, proc in procs.items():
        assert proc.returncode == 0, proc.stderr[-3000:]
        saved[seed] = Path(proc.stdout.split("saved model: ")[1].split()[0]).parent
    assert {p.name for p in saved.values()} == {"F", "F-2"}, saved
    for seed, folder in saved.items():
        results = json.loads((folder/"results.json").read_text())
        assert results["parameters"]["seed"] == seed, f"{folder} holds seed {results['parameters']['seed']}, the run with seed {seed} said it saved there"
        notebook = (folder/"sentiment.ipynb").read_text()
        assert f"seed = {seed}" in notebook, f"{folder}'s executed notebook is not the seed-{seed} run's"


def test_a_rerun_keeps_the_notebook_of_a_run_that_failed(ftrecipes_cmd, tmp_path):
    "A run that failed left only its executed notebook, which its error message points to: the next run goes elsewhere."
    failed = tmp_path/"F"
    failed.mkdir()
    (failed/"sentiment.ipynb").write_text('{"the": "failed run\'s notebook"}')
    proc = _ftr(ftrecipes_cmd, "run", "sentiment", *SMOKE, "-p", f"data={tmp_path/'missing.csv'}", "-o", str(failed), "-q")
    assert proc.returncode == 1, proc.stderr[-3000:]
    assert (failed/"sentiment.ipynb").read_text() == '{"the": "failed run\'s notebook"}', "the failed run's notebook was replaced"
    assert str(tmp_path/"F-2"/"sentiment.ipynb") in proc.stderr, proc.stderr


def _not_writable(tmp_path):
    "A folder this user cannot write to, or None (root writes anywhere)."
    if not hasattr(os, "geteuid") or os.geteuid() == 0: return None
    locked = tmp_path/"locked"
    locked.mkdir()
    locked.chmod(0o500)
    return locked


def test_an_output_folder_that_cannot_be_one_stops_with_one_line(ftrecipes_cmd, tmp_path):
    a_file = tmp_path/"results.txt"
    a_file.write_text("not a folder")
    cases = {"a file": (a_file, f"output folder {a_file}: is a file, not a folder. Give another folder for the outputs"),
             "under a file": (a_file/"run", f"output folder {a_file/'run'}: {a_file} is a file, so no folder can be made under it.")}
    locked = _not_writable(tmp_path)
    if locked is not None: cases["not writable"] = (locked/"run", f"output folder {locked/'run'}: {locked} is not writable by you.")
    def run(path): return _ftr(ftrecipes_cmd, "run", "sentiment", *SMOKE, "-o", str(path), "-q")
    try:
        with ThreadPoolExecutor(2) as pool: procs = dict(zip(cases, pool.map(run, [p for p, _ in cases.values()])))
    finally:
        if locked is not None: locked.chmod(0o700)
    for name, proc in procs.items():
        lines = [l for l in proc.stderr.splitlines() if l.strip()]
        assert proc.returncode == 1 and len(lines) == 1, f"{name}: exit {proc.returncode}, stderr:\n{proc.stderr[-3000:]}"
        assert lines[0] == f"ftrecipes: error: {cases[name][1]}" or lines[0].startswith(f"ftrecipes: error: {cases[name][1]}"), \
            f"{name}: {lines[0]}"
    assert a_file.read_text() == "not a folder"


# Ctrl-C: 8 epochs of 20 steps, so an interrupt after the first checkpoint lands with most of the run still to do
LONG = [*SMOKE, "-p", "epochs=8", "-p", "seed=3"]
IN_PROCESS = ("import sys, functools, threading, ftrecipes.cli as cli, ftrecipes.runner as r; "
              "r.run_recipe = functools.partial(r.run_recipe, in_process=True); status = cli.main(sys.argv[1:]); "
              "print('cells still running:', [t.name for t in threading.enumerate() if t.name == 'CaptureShell-loop']); "
              "sys.exit(status)")


def _sigint_as_in_a_terminal():
    "In the child, before it starts: Ctrl-C delivered and handled as a new command in a terminal gets it."
    signal.pthread_sigmask(signal.SIG_UNBLOCK, [signal.SIGINT])
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _sigint_state() -> str:
    "This process's SIGINT handling, where it is not what a terminal gives a command ('' when it is)."
    blocked, handler = signal.SIGINT in signal.pthread_sigmask(signal.SIG_BLOCK, []), signal.getsignal(signal.SIGINT)
    return ", ".join(([] if not blocked else ["blocked"]) + ([] if handler is signal.default_int_handler else [f"handler {handler!r}"]))


def _interrupt_after_a_checkpoint(command, out):
    "Start `command`, send it SIGINT (Ctrl-C) once a complete checkpoint exists in `out`; return (process, stdout, stderr)."
    # A child inherits its parent's blocked and ignored signals; the full suite once left SIGINT so in this process (the
    # run then finished, exit 0), so the child gets a terminal's Ctrl-C, and the state found is printed to trace it.
    if _sigint_state(): warnings.warn(f"SIGINT in the test process: {_sigint_state()} (left by an earlier test); reset for the child")
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=subprocess_env(threads=1),
                            preexec_fn=_sigint_as_in_a_terminal)
    deadline = time.time() + 300
    while not any(checkpoint_is_complete(d) for d in (out/"checkpoints").glob("checkpoint-*")):
        assert proc.poll() is None, f"the run ended before its first checkpoint:\n{proc.communicate()[1][-3000:]}"
        assert time.time() < deadline, "no checkpoint within 300 s"
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    stdout, err = proc.communicate(timeout=120)
    return proc, stdout, err


def _check_interrupted(proc, err, out, command_start):
    lines = [l for l in err.splitlines() if l.strip()]
    assert proc.returncode == 130, f"exit {proc.returncode}:\n{err[-3000:]}"
    assert len(lines) == 2, f"expected two lines on stderr, got {len(lines)}:\n{err[-3000:]}"
    done = sorted((d for d in (out/"checkpoints").glob("checkpoint-*") if checkpoint_is_complete(d)),
                  key=lambda d: int(d.name.split("-")[-1]))
    assert done and not (out/"results.json").exists()
    assert lines[0] == f"ftrecipes: sentiment was interrupted; its outputs are in {out}, its last complete checkpoint is {done[-1]}.", lines[0]
    command = f"{command_start} -p preset=smoke -p epochs=8 -p seed=3 -p resume=True -o {shlex.quote(str(out))} -q"
    assert lines[1] == f"To resume from it: {command}", lines[1]
    return done[-1], shlex.split(command)


def test_ctrl_c_during_a_run_says_where_it_stopped_and_how_to_resume(ftrecipes_cmd, tmp_path):
    "Through papermill's kernel (what `ftrecipes run` does): two lines and exit 130; the command printed resumes the run."
    out = tmp_path/"interrupted"
    proc, _, err = _interrupt_after_a_checkpoint([ftrecipes_cmd, "run", "sentiment", *LONG, "-o", str(out), "-q"], out)
    checkpoint, command = _check_interrupted(proc, err, out, "ftrecipes run sentiment")
    assert command[0] == "ftrecipes"
    resumed = subprocess.run([ftrecipes_cmd, *command[1:]], capture_output=True, text=True, env=subprocess_env(threads=2))
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    training = json.loads((out/"results.json").read_text())["training"]
    assert training["resumed_from"] == checkpoint.name, training


def test_ctrl_c_stops_a_run_in_this_process_too(tmp_path):
    "In-process runs (torchrun, experiments) run the cells in a thread of their own: Ctrl-C stops that thread's training too."
    out = tmp_path/"interrupted"
    proc, stdout, err = _interrupt_after_a_checkpoint([sys.executable, "-c", IN_PROCESS, "run", "sentiment", *LONG, "-o", str(out), "-q"], out)
    _check_interrupted(proc, err, out, "ftrecipes run sentiment")
    assert "cells still running: []" in stdout, stdout[-2000:]
