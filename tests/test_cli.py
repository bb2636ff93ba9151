"""The command line: list, run, numbered output folders, a loss that turns NaN. The bad inputs, each stopping before training with one line, are in test_bad_inputs.py."""
import json
import re
import subprocess
import sys


from conftest import subprocess_env


def _ftr(cmd, *args, threads=1):
    return subprocess.run([cmd, *args], capture_output=True, text=True, env=subprocess_env(threads))


def test_list_shows_recipes_and_parameters(ftrecipes_cmd):
    proc = _ftr(ftrecipes_cmd, "list")
    assert proc.returncode == 0, proc.stderr
    assert "sentiment" in proc.stdout and "learning_rate" in proc.stdout and "bert-base-cased" in proc.stdout


def test_list_imports_no_training_stack():
    "`ftrecipes list` answers at once: the command imports torch and transformers only to run a recipe."
    code = ("import sys, contextlib, io; from ftrecipes.cli import main\n"
            "with contextlib.redirect_stdout(io.StringIO()): main(['list'])\n"
            "print(sorted(m for m in ('torch', 'transformers', 'papermill') if m in sys.modules))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=subprocess_env())
    assert proc.returncode == 0 and proc.stdout.strip() == "[]", proc.stdout + proc.stderr[-2000:]


def test_python_dash_m_runs_the_same_command():
    "`python -m ftrecipes.cli` where the `ftrecipes` script is not on the PATH: the same output and exit codes."
    listed = subprocess.run([sys.executable, "-m", "ftrecipes.cli", "list"], capture_output=True, text=True, env=subprocess_env())
    assert listed.returncode == 0 and "sentiment" in listed.stdout and "learning_rate" in listed.stdout, listed.stderr
    wrong = subprocess.run([sys.executable, "-m", "ftrecipes.cli", "run", "no_such_task"], capture_output=True, text=True,
                           env=subprocess_env())
    assert wrong.returncode == 1 and "No recipe 'no_such_task'" in wrong.stderr, (wrong.stdout, wrong.stderr)


def test_run_smoke_then_reload_in_a_new_process(ftrecipes_cmd, tmp_path):
    out = tmp_path/"run"
    proc = _ftr(ftrecipes_cmd, "run", "sentiment", "-p", "preset=smoke", "-o", str(out), "-q", threads=2)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "test: accuracy" in proc.stdout and "saved model:" in proc.stdout
    assert not re.search(r"^epoch \d", proc.stdout, re.M), "-q: no progress lines either"
    results = json.loads((out/"results.json").read_text())
    assert (out/"sentiment.ipynb").exists(), "the executed notebook is kept next to the results"
    code = ("import sys; from transformers import pipeline; "
            "print(pipeline('text-classification', model=sys.argv[1])(['Loved it.', 'Awful.']))")
    check = subprocess.run([sys.executable, "-c", code, results["saved_model"]], capture_output=True, text=True,
                           env=subprocess_env())
    assert check.returncode == 0 and ("positive" in check.stdout or "negative" in check.stdout), check.stderr[-2000:]
    # The same folder again: the finished run is kept, the new one is numbered.
    again = _ftr(ftrecipes_cmd, "run", "sentiment", "-p", "preset=smoke", "-p", "epochs=1", "-o", str(out), threads=2)
    assert again.returncode == 0, again.stderr[-3000:]
    assert json.loads((out/"results.json").read_text())["created"] == results["created"]
    assert (tmp_path/"run-2"/"results.json").exists()
    _assert_progress_lines(again.stdout)  # without -q (this second run saves a third kernel start)


def _assert_progress_lines(stdout):
    "A terminal sees a plain progress line per epoch (the notebook's table of epochs is a widget it never gets), before the summary."
    lines = re.findall(r"^epoch (\d+)/(\d+)  step (\d+)/(\d+)  loss \d+\.\d{4}  eval_loss \d+\.\d{4}  "
                       r"eval_accuracy \d+\.\d{2}  elapsed \S+.*$", stdout, re.M)
    assert lines, stdout[-3000:]
    epoch, epochs, step, steps = map(int, lines[-1][:4])
    assert epoch == epochs and step == steps, lines  # the last line closes the last epoch
    assert len(lines) == epochs, lines  # one per epoch (lines between epochs have no eval_loss)
    assert stdout.index("epoch 1/") < stdout.index(f"trained {steps} steps")


def test_a_loss_that_becomes_nan_stops_the_run_at_once_with_the_step_and_the_cause(ftrecipes_cmd, tmp_path):
    "A learning rate of 1e30 overflows the weights within steps: the run stops there, not after every epoch trained on NaN."
    out = tmp_path/"run"
    proc = _ftr(ftrecipes_cmd, "run", "sentiment", "-p", "preset=smoke", "-p", "learning_rate=1e30", "-o", str(out), "-q")
    assert proc.returncode == 1, proc.stderr[-3000:]
    line = proc.stderr.strip().splitlines()[-1]
    found = re.search(r"NonFiniteLossError: step (\d+): the training loss is (nan|inf)", line)
    assert found and "learning rate too high" in line, line
    assert int(found.group(1)) <= 8, f"stopped at step {found.group(1)} of 80 (logged every 2; warm-up first)"
    assert not (out/"results.json").exists() and not (out/"model").exists()
