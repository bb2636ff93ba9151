"""Wheels to run ftrecipes on a machine that has PyTorch but no package index (a GPU server or cluster node offline).

It walks the requirements of ftrecipes (and of the extras you name) through the packages installed here, stops at
torch and torchvision (the target keeps its own build, as Colab does), and downloads for the target's Python and
platform the wheel of each package at the version constraints.txt pins (the tested set; the installed version where
constraints.txt has none). The installed versions must be the pinned ones (it stops, naming each that differs): the
walk reads each package's requirements from what is installed.

- pure-Python wheels always, so the target runs the versions the tests passed with;
- compiled wheels only for packages the target lacks, when `--target-has` lists what it has (a `pip list` or
  `pip freeze` of the target, or bare names). Replacing a compiled package that torch or pandas were built against
  (numpy, pyarrow) would break them. Without `--target-has`, compiled packages are listed, not downloaded.

    python tools/offline_wheels.py wheels/ --target-has target-pip-list.txt
    # on the target, from the repository root:
    pip install --no-index --no-deps --target site wheels/*.whl && export PYTHONPATH=$PWD/site:$PWD
    python -c "import ftrecipes.training"

pip resolves requirements only against an index, and `pip download` has none for the target here, hence this walk
over the installed metadata (importlib.metadata and packaging do the parsing).
"""
import argparse
import re
import subprocess
import sys
from importlib import metadata
from pathlib import Path

from packaging.markers import default_environment
from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[1]
KEEP_TARGETS_OWN = {"torch", "torchvision", "torchaudio", "triton"}  # and what only they need: never walked into
PLATFORMS = ["manylinux_2_28_x86_64", "manylinux_2_27_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64",
             "manylinux1_x86_64"]


def pins(path: Path) -> dict:
    """canonical name -> version string of each `name==version` line of a requirements or constraints file.

    Comments and blank lines are skipped; any other line that is not one exact pin, or a package pinned twice, is an
    error naming the file and line, so a typo never silently leaves a package at whatever version is installed here.
    The tests read constraints.txt and constraints-lowest.txt with this same function."""
    out = {}
    for number, line in enumerate(Path(path).read_text().splitlines(), 1):
        text = line.split(" #")[0].strip()
        if not text or text.startswith("#"): continue
        where = f"{path}, line {number}: {line.strip()!r}"
        try: req = Requirement(text)
        except InvalidRequirement as e: raise ValueError(f"{where} is not a requirement ({e}); write name==version.")
        spec = list(req.specifier)
        if len(spec) != 1 or spec[0].operator != "==" or "*" in spec[0].version:
            raise ValueError(f"{where} is not an exact pin; write name==version.")
        key = canonicalize_name(req.name)
        if key in out: raise ValueError(f"{where} pins {req.name} a second time; keep one line per package.")
        out[key] = spec[0].version
    return out


def target_names(path: Path) -> set:
    "Canonical package names in a `pip list` / `pip freeze` output or a list of names."
    names = set()
    for token in re.split(r"[\s,]+", path.read_text()):
        m = re.match(r"^([A-Za-z0-9][A-Za-z0-9._-]*)", token)
        if m and not re.fullmatch(r"[\d.]+|Package|Version|-+", m[1]): names.add(canonicalize_name(m[1]))
    return names


def closure(extras: list, python_version: str) -> dict:
    "canonical name -> installed Distribution, for ftrecipes[extras] and everything it needs, torch excluded."
    env = default_environment(); env.update(python_version=python_version, python_full_version=python_version + ".0")
    found, todo = {}, [("ftrecipes", set(extras))]
    while todo:
        name, wanted_extras = todo.pop()
        key = canonicalize_name(name)
        if key in KEEP_TARGETS_OWN or key.startswith(("nvidia-", "cuda-")): continue
        try: dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            sys.exit(f"{name} is needed but not installed here: install ftrecipes with these extras first "
                     f"(pip install -c constraints.txt -e '.[{','.join(extras)}]').")
        if key in found and not wanted_extras: continue
        found[key] = dist
        for text in dist.requires or []:
            req = Requirement(text)
            if req.marker is None: needed = True
            else: needed = any(req.marker.evaluate(dict(env, extra=e)) for e in (wanted_extras or {""}))
            if needed and canonicalize_name(req.name) not in found: todo.append((req.name, set(req.extras)))
    found.pop("ftrecipes", None)
    return found


def differing(dists: dict, pinned: dict) -> list:
    """'name: installed X, pinned Y' for each walked package whose installed version is not the pinned one.

    The walk reads each package's requirements from the version installed here, so it must be the pinned version:
    transformers 5.25 needs `kernels`, which 5.24 did not, and walking 5.24 while downloading 5.25 would leave
    `kernels` out of the wheels without a word."""
    return [f"{dist.metadata['Name']}: installed {dist.version}, pinned {pinned[key]}"
            for key, dist in sorted(dists.items()) if key in pinned and Version(dist.version) != Version(pinned[key])]


def is_pure(dist) -> bool:
    "Whether the installed wheel was pure Python (its WHEEL file says Root-Is-Purelib: true)."
    wheel = dist.read_text("WHEEL") or ""
    return "Root-Is-Purelib: true" in wheel


def download(command: list, specs: list, dest: Path, build_sdists: bool):
    "All at once; where that fails, one by one, building a pure package that publishes no wheel from its source."
    if not specs or subprocess.run(command + specs, capture_output=True).returncode == 0: return
    for spec in specs:
        if subprocess.run(command + [spec], capture_output=True).returncode == 0: continue
        if build_sdists and subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "-w", str(dest),
                                            spec], capture_output=True).returncode == 0:
            print(f"{spec}: no wheel published; built one from its source")
            continue
        sys.exit(f"{spec}: no wheel for the target and none could be built; download it by hand into {dest}.")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("dest", help="folder for the wheels")
    ap.add_argument("--extras", default="", help="comma-separated extras of ftrecipes to include (e.g. offline,tuning)")
    ap.add_argument("--python-version", default="3.12", help="the target's Python (default 3.12)")
    ap.add_argument("--target-has", type=Path, help="what the target already has: pip list / pip freeze output, or names")
    ap.add_argument("--constraints", type=Path, default=ROOT/"constraints.txt")
    a = ap.parse_args()
    try: pinned = pins(a.constraints)
    except ValueError as e: sys.exit(str(e))
    have = target_names(a.target_has) if a.target_has else None
    dists = closure([e for e in a.extras.split(",") if e], a.python_version)
    stale = differing(dists, pinned)
    if stale:
        sys.exit(f"the packages installed here differ from {a.constraints}, so their requirements would be walked at "
                 f"the wrong versions: {'; '.join(stale[:8])}{f' and {len(stale) - 8} more' if len(stale) > 8 else ''}. Install the pinned set first: "
                 f"pip install -c {a.constraints} -e '.[dev]'")
    pure, compiled, skipped = [], [], []
    for key, dist in sorted(dists.items()):
        spec = f"{dist.metadata['Name']}=={dist.version}"  # the pinned version: differing() checked it
        if is_pure(dist): pure.append(spec)
        elif have is not None and key not in have: compiled.append(spec)
        else: skipped.append(spec)
    dest = Path(a.dest); dest.mkdir(parents=True, exist_ok=True)
    base = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:", "-d", str(dest),
            "--python-version", a.python_version, "--implementation", "cp"]
    download(base + ["--platform", "any"], pure, dest, build_sdists=True)
    download(base + [f for p in PLATFORMS for f in ("--platform", p)], compiled, dest, build_sdists=False)
    wheels = sorted(dest.glob("*.whl"))
    size = sum(w.stat().st_size for w in wheels) / 2**20
    print(f"{len(pure)} pure-Python and {len(compiled)} compiled wheels for Python {a.python_version} in {dest} "
          f"({len(wheels)} files, {size:.1f} MiB)")
    if skipped:
        print(("the target has these compiled packages already; its own builds stay: " if have is not None else
               "compiled, not downloaded (the target must have them; --target-has downloads those it lacks): ")
              + ", ".join(skipped))


if __name__ == "__main__":
    main()
