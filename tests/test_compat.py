"""Nothing outside ftrecipes.compat tests a library's version: each workaround lives in compat, with the versions it serves.

Reporting a version (saving's library_versions, environment's torch_version, an error message that names the installed
release) is not a test of it and is allowed anywhere. A branch on whether an attribute exists (`hasattr`) is not
caught here; reviews keep those in compat."""
import ast
from pathlib import Path

import pytest

import ftrecipes

PACKAGE = Path(ftrecipes.__file__).parent
# helpers whose only use is comparing versions (packaging, setuptools, torch, transformers.utils)
VERSION_HELPERS = {"Version", "parse_version", "LooseVersion", "TorchVersion", "is_torch_greater_or_equal",
                   "is_torch_version", "is_transformers_version", "check_min_version", "require_version"}


def _name(func) -> str:
    return func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")


def _reads_version(node) -> bool:
    "Does the expression read a version: `x.__version__`, `sys.version_info`, `metadata.version(...)`?"
    return any((isinstance(n, ast.Attribute) and n.attr in ("__version__", "version_info"))
               or (isinstance(n, ast.Call) and _name(n.func) == "version") for n in ast.walk(node))


def version_tests(source: str) -> list:
    "The lines of `source` that compare a version, parse one to compare it, or match its text."
    found = set()
    for n in ast.walk(ast.parse(source)):
        if isinstance(n, ast.Compare) and any(_reads_version(o) for o in (n.left, *n.comparators)): found.add(n.lineno)
        elif isinstance(n, ast.Call):
            f = n.func
            if _name(f) in VERSION_HELPERS: found.add(n.lineno)
            elif isinstance(f, ast.Attribute) and f.attr == "parse" and _name(f.value) == "version": found.add(n.lineno)
            elif isinstance(f, ast.Attribute) and f.attr in ("startswith", "endswith") and _reads_version(f.value):
                found.add(n.lineno)
    return sorted(found)


@pytest.mark.parametrize("code", [
    "if torch.__version__ >= (2, 12): pass",
    "old = version.parse(transformers.__version__) < version.parse('5.3')",
    "old = Version(metadata.version('peft')) >= Version('0.21')",
    "broken = metadata.version('tokenizers') in ('0.23.1', '0.23.2')",
    "old = torch.__version__.startswith('2.11')",
    "old = int(torch.__version__.split('.')[1]) < 12",
    "old = sys.version_info < (3, 11)",
    "new = is_torch_greater_or_equal('2.12')",
])
def test_a_version_test_is_found(code):
    assert version_tests(code) == [1]


@pytest.mark.parametrize("code", [
    "print(f'torch {torch.__version__}')",
    "out[lib] = metadata.version(lib)",
    "env = dict(torch_version=torch.__version__)",
    "raise ValueError(f'tokenizers {tokenizers.__version__} returned too few windows')",
    "if 'activation_checkpointing' in names: pass",
])
def test_reporting_a_version_is_not_a_version_test(code):
    assert version_tests(code) == []


def test_compat_holds_the_version_tests():
    "The check sees compat's own torch test (so a test moved back out of compat would be seen too)."
    assert version_tests((PACKAGE/"compat.py").read_text())


def test_only_compat_tests_library_versions():
    found = {p.name: version_tests(p.read_text()) for p in sorted(PACKAGE.glob("*.py")) if p.name != "compat.py"}
    found = {name: lines for name, lines in found.items() if lines}
    assert not found, f"library-version tests outside compat (module: lines); move them to nbs/00_compat.ipynb: {found}"
