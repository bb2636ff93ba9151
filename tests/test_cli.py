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


def test_search_smoke_prints_the_best_trial_and_the_best_params_file(ftrecipes_cmd, tmp_path):
    "`ftrecipes search`: parameters given with -p are fixed (not searched) and land in best_params.json with the best trial's."
    out = tmp_path/"search"
    proc = _ftr(ftrecipes_cmd, "search", "sentiment", "--trials", "2", "-p", "preset=smoke", "-p", "epochs=1",
                "-p", "max_train_samples=64", "-o", str(out), threads=2)
    assert proc.returncode == 0, proc.stderr[-3000:]
    best = json.loads((out/"best_params.json").read_text())
    assert best["preset"] == "smoke" and best["epochs"] == 1 and "learning_rate" in best, best
    found = re.search(r"^best: trial (\d+), validation accuracy \d+\.\d{2}, with (.*)$", proc.stdout, re.M)
    assert found and "learning_rate=" in found.group(2) and "epochs=" not in found.group(2), proc.stdout[-3000:]
    assert f"best_params.json: {out/'best_params.json'}" in proc.stdout
    assert f"ftrecipes run sentiment --params {out/'best_params.json'}" in proc.stdout
    assert len(re.findall(r"^epoch 1/1  step \d+/\d+  loss .* eval_loss ", proc.stdout, re.M)) == 2, "a progress line per trial"


def test_curve_smoke_prints_the_table_and_saves_the_plot(ftrecipes_cmd, tmp_path):
    out = tmp_path/"curve"
    proc = _ftr(ftrecipes_cmd, "curve", "sentiment", "--fractions", "0.25,1.0", "-p", "preset=smoke", "-p", "epochs=1",
                "-o", str(out), threads=2)
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = json.loads((out/"learning_curve.json").read_text())
    assert [r["fraction"] for r in rows] == [0.25, 1.0], rows
    table = proc.stdout[proc.stdout.index("test accuracy by training rows"):]
    for r in rows: assert re.search(rf"^\s+{r['train_rows']}\s+{r['fraction']:g}\s+{r['accuracy']:.2f}\s", table, re.M), table
    assert (out/"learning_curve.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert f"plot: {out/'learning_curve.png'}" in proc.stdout


def test_search_and_curve_refuse_bad_arguments_in_one_line_before_loading_torch():
    cases = {("search", "no_such_task", "--trials", "2"): "No recipe 'no_such_task'",
             ("search", "sentiment", "--trials", "0"): "--trials 0: must be a whole number of at least 1",
             ("search", "sentiment", "--trials", "many"): "--trials many: must be a whole number",
             ("curve", "sentiment", "--fractions", "0.5,2"): "--fractions 0.5,2: use fractions of the training rows in (0, 1]",
             ("curve", "sentiment", "--fractions", "a,b"): "--fractions a,b: use fractions",
             ("curve", "no_such_task"): "No recipe 'no_such_task'",
             ("curve", "sentiment", "-p", "max_train_samples=10"): "curve sets max_train_samples itself"}
    code = ("import sys, io, json, contextlib; from ftrecipes.cli import main\n"
            "out = []\n"
            "for argv in json.loads(sys.argv[1]):\n"
            "    err = io.StringIO()\n"
            "    with contextlib.redirect_stderr(err): out.append((main(argv), err.getvalue()))\n"
            "print(json.dumps(dict(out=out, torch='torch' in sys.modules)))")
    proc = subprocess.run([sys.executable, "-c", code, json.dumps(list(cases))], capture_output=True, text=True, env=subprocess_env())
    assert proc.returncode == 0, proc.stderr[-3000:]
    found = json.loads(proc.stdout)
    for (argv, expected), (status, err) in zip(cases.items(), found["out"]):
        assert status == 1 and err.count("\n") == 1 and err.startswith(f"ftrecipes: error: {expected}"), (argv, status, err)
    assert not found["torch"], "the arguments are checked before the training stack loads"
