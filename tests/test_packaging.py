"""The wheel that `pip install` builds (on Colab, from the repository) carries the package data the recipes read at run
time: the bundled samples and nltk's English Punkt parameters, which ROUGE-Lsum and lead-3 split sentences with."""
import subprocess
import sys
import zipfile

from conftest import build_wheel, subprocess_env


def test_the_built_wheel_carries_the_punkt_parameters_and_splits_sentences_from_them(tmp_path):
    "Built from a clean checkout, as pip builds it from the repository, the package finds its Punkt data (no download)."
    wheel = build_wheel(tmp_path)
    names = set(zipfile.ZipFile(wheel).namelist())
    punkt = {f"ftrecipes/punkt_tab/english/{f}" for f in
             ("abbrev_types.txt", "collocations.tab", "ortho_context.tab", "sent_starters.txt")}
    assert punkt <= names, sorted(punkt - names)
    assert any(n.startswith("ftrecipes/samples/") for n in names)
    # imported from the wheel itself (a zip on the path), away from the repository
    code = ("import ftrecipes.seq2seq as s; assert '.whl' in s.__file__, s.__file__; "
            "print(len(s.sentences('The U.S. Army said Mr. Smith left at 5 p.m. on Friday. He returned.')))")
    env = dict(subprocess_env(), PYTHONPATH=str(wheel))
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, env=env)
    assert run.returncode == 0, run.stderr[-3000:]
    assert run.stdout.strip() == "2"
