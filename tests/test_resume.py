"""Resume after a disconnect: a run killed with SIGKILL after a checkpoint continues from it and ends where an
uninterrupted run with the same seed ends. Smoke size (a tiny model on the bundled sample): it tests the machinery."""
import json
import os
import signal
import subprocess
import time

from conftest import subprocess_env
from ftrecipes.outputs import checkpoint_is_complete

# 8 epochs of 20 steps, so a kill after the first checkpoint lands with most of the run still to do
PARAMS = ["-p", "preset=smoke", "-p", "epochs=8", "-p", "seed=7"]


def _run(cmd, out, *extra):
    proc = subprocess.run([cmd, "run", "sentiment", *PARAMS, *extra, "-o", str(out), "-q"],
                          capture_output=True, text=True, env=subprocess_env(threads=1))
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads((out/"results.json").read_text()), proc


def test_a_run_killed_after_a_checkpoint_resumes_to_the_uninterrupted_result(ftrecipes_cmd, tmp_path, capsys):
    killed = tmp_path/"killed"
    # start the run to be killed first, then the uninterrupted one beside it (two cores, one thread each)
    victim = subprocess.Popen([ftrecipes_cmd, "run", "sentiment", *PARAMS, "-o", str(killed), "-q"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=subprocess_env(threads=1),
                              start_new_session=True)  # its own process group: the kill takes the kernel too
    with subprocess.Popen([ftrecipes_cmd, "run", "sentiment", *PARAMS, "-o", str(tmp_path/"full"), "-q"],
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=subprocess_env(threads=1)) as full_proc:
        deadline = time.time() + 300
        while not any(checkpoint_is_complete(d) for d in (killed/"checkpoints").glob("checkpoint-*")):
            assert victim.poll() is None, "the run ended before its first checkpoint"
            assert time.time() < deadline, "no checkpoint within 300 s"
            time.sleep(0.05)
        os.killpg(victim.pid, signal.SIGKILL)   # what a disconnect does: no clean-up, no final save
        victim.wait()
        full_err = full_proc.stderr.read()
    assert full_proc.returncode == 0, full_err[-3000:]
    full = json.loads((tmp_path/"full"/"results.json").read_text())
    assert not (killed/"results.json").exists(), "the run finished before the kill"
    done = {int(d.name.split("-")[-1]) for d in (killed/"checkpoints").glob("checkpoint-*") if checkpoint_is_complete(d)}
    assert done and max(done) < full["training"]["global_step"]
    # a checkpoint the kill cut short while it was written (weights, no state file): never resumed from
    half = killed/"checkpoints"/f"checkpoint-{max(done) + 1}"
    half.mkdir(exist_ok=True); (half/"model.safetensors").write_bytes(b"\0" * 64)

    resumed, proc = _run(ftrecipes_cmd, killed, "-p", "resume=True")
    assert resumed["training"]["resumed_from"] == f"checkpoint-{max(done)}", resumed["training"]
    assert not half.exists()
    total = full["training"]["global_step"]
    assert resumed["training"]["global_step"] == total
    # the steps of this session apart from those before the kill, wherever they are recorded or printed
    assert (resumed["training"]["resumed_from_step"], resumed["training"]["steps_this_run"]) == (max(done), total - max(done))
    said = f"trained {total - max(done)} steps in this run, {total} in all (resumed from step {max(done)})"
    assert said in proc.stdout, proc.stdout[-2000:]
    assert said in (killed/"sentiment.ipynb").read_text(), "the executed notebook says it too"
    assert said in (killed/"model"/"README.md").read_text(), "and the model card"
    line = (f"resume: killed after checkpoint-{max(done)} of {full['training']['global_step']} steps; "
            + "; ".join(f"{s} accuracy {resumed['metrics'][s]['accuracy']:.2f} / loss {resumed['metrics'][s]['loss']:.6f} "
                        f"(uninterrupted {full['metrics'][s]['accuracy']:.2f} / {full['metrics'][s]['loss']:.6f})"
                        for s in ("validation", "test")))
    with capsys.disabled(): print("\n" + line)
    for split in ("validation", "test"):
        for k in ("accuracy", "loss"):
            a, b = resumed["metrics"][split][k], full["metrics"][split][k]
            assert abs(a - b) <= 0.005 * max(abs(b), 1e-8), f"{split} {k}: resumed {a} vs uninterrupted {b}"

