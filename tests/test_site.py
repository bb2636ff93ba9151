"""The docs site: built offline with one command, opened page by page in headless Chromium; the committed notebooks
carry real outputs with their provenance, the Colab badge and install cell, and no machine paths or tokens.

The browser test serves `_docs/` over HTTP on loopback and opens every page: no console errors and no failed request,
its title shown, every image (plots, badges) actually decoded with a non-zero size, every internal link and anchor
resolving, and a Colab badge pointing at the page's own notebook on each recipe page. Screenshots of the home page and
the sentiment recipe go to test-artifacts/."""
import functools
import importlib.util
import http.server
import json
import re
import subprocess
import sys
import threading
import tomllib
import types
from pathlib import Path
from urllib.parse import urljoin, urlparse

import nbformat
import pytest
import yaml

from browser import browser, screenshot
from conftest import NBS, ROOT, subprocess_env

DOCS = ROOT/"_docs"
RECIPES = sorted(p.name for p in NBS.glob("1[0-9]_*.ipynb"))
REPO_URL = tomllib.loads((ROOT/"pyproject.toml").read_text())["project"]["urls"]["Repository"].rstrip("/")
COLAB = "https://colab.research.google.com/github/" + REPO_URL.removeprefix("https://github.com/")


def notebook(name): return nbformat.read(NBS/name, as_version=4)


def code_cells(nb): return [c for c in nb.cells if c.cell_type == "code"]


def output_text(out) -> str:
    if "text" in out: return out["text"]
    if "traceback" in out: return "\n".join(out["traceback"])
    return "\n".join(v for k, v in out.get("data", {}).items() if k.startswith("text/") and isinstance(v, str))


# ---- the committed notebooks ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("nb", RECIPES)
def test_recipe_has_colab_badge_and_install_cell(nb):
    "A Colab badge for this very notebook, and a first code cell that installs ftrecipes on Colab only, keeping its torch."
    cells = notebook(nb).cells
    badge = f"]({COLAB}/blob/main/nbs/{nb})"
    assert any(c.cell_type == "markdown" and badge in c.source for c in cells[:4]), f"{nb}: no Colab badge linking {badge}"
    first = code_cells(notebook(nb))[0].source
    assert '"google.colab" in sys.modules' in first and "torch==" in first and f"git+{REPO_URL}" in first, first


FIND_SPEC = importlib.util.find_spec  # the real one, kept before the test replaces it


def colab_install_command(source: str, on_colab: bool, installed: bool, monkeypatch) -> list:
    "Run the install cell in an IPython shell, pretending to be (or not to be) Colab; return the %pip lines it ran."
    from IPython.core.interactiveshell import InteractiveShell
    shell = InteractiveShell.instance()
    calls = []
    shell.register_magic_function(lambda line: calls.append(line), "line", "pip")
    if on_colab: monkeypatch.setitem(sys.modules, "google.colab", types.ModuleType("google.colab"))
    else: monkeypatch.delitem(sys.modules, "google.colab", raising=False)
    monkeypatch.setattr(importlib.util, "find_spec", lambda n, *a: (FIND_SPEC(n, *a) if installed or n != "ftrecipes" else None))
    result = shell.run_cell(source)
    assert result.success, result.error_in_exec or result.error_before_exec
    return calls


def test_colab_install_cell_keeps_colab_torch_and_is_harmless_elsewhere(monkeypatch):
    "On Colab without ftrecipes: one %pip that pins the torch already there; elsewhere, or once installed: nothing."
    from importlib.metadata import version
    source = code_cells(notebook("10_sentiment.ipynb"))[0].source
    calls = colab_install_command(source, on_colab=True, installed=False, monkeypatch=monkeypatch)
    assert len(calls) == 1 and f'"torch=={version("torch")}"' in calls[0] and f"ftrecipes @ git+{REPO_URL}" in calls[0], calls
    assert colab_install_command(source, on_colab=False, installed=False, monkeypatch=monkeypatch) == []
    assert colab_install_command(source, on_colab=True, installed=True, monkeypatch=monkeypatch) == []


@pytest.mark.parametrize("nb", RECIPES)
def test_recipe_notebook_holds_outputs_of_a_real_run(nb):
    "Every code cell that ran shows its outputs; the last one ends with the provenance line of a real (not smoke) run."
    cells = code_cells(notebook(nb))
    assert sum(bool(c.outputs) for c in cells) >= len(cells) // 3, \
        f"{nb} holds almost no outputs: run `python tools/run_notebooks.py {Path(nb).stem}` and commit"
    assert not any(o.output_type == "error" for c in cells for o in c.outputs), f"{nb}: a stored output is an error"
    last = "".join(output_text(o) for o in cells[-1].outputs)
    line = next((l for l in last.splitlines() if l.startswith("Provenance: ")), None)
    assert line, f"{nb}: the last cell printed no provenance line"
    for part in ("model ", "data ", "preset ", "wall time ", "torch ", "transformers "): assert part in line, line
    assert "preset smoke" not in line, f"{nb}: the stored outputs come from a smoke run: {line}"
    assert any(o.get("data", {}).get("image/png") for c in cells for o in c.outputs), f"{nb}: no plot stored"


def test_results_summaries_and_home_page_table():
    "A results summary per recipe in nbs/results/, and the home page's stored table with a row per summary."
    tasks = {re.match(r"^1\d_(.+)\.ipynb$", nb)[1] for nb in RECIPES}
    found = {json.loads(p.read_text())["task"] for p in (NBS/"results").glob("*.json")}
    assert found == tasks, f"results summaries: missing {tasks - found}, unexpected {found - tasks}"
    html = "".join(o.get("data", {}).get("text/html", "") for c in code_cells(notebook("index.ipynb")) for o in c.outputs)
    assert "<table" in html, "the home page's results table is not stored: run tools/run_notebooks.py index"
    for task in tasks: assert f"<td>{task}</td>" in html or f"<th>{task}</th>" in html, f"no row for {task} on the home page"


# Paths of the machine a notebook ran on, and strings shaped like secrets (Hugging Face, GitHub, AWS, OpenAI tokens).
LEAKS = re.compile(r"(?<![\w<])/(?:root|home|Users|tmp|private/var|work)/[\w.-]"
                   r"|\bhf_[A-Za-z0-9]{30,}|\bgh[pousr]_[A-Za-z0-9]{36}|\bAKIA[0-9A-Z]{16}\b|\bsk-[A-Za-z0-9]{32,}")


def test_committed_outputs_hold_no_machine_paths_or_tokens():
    "Stored outputs and results summaries never show a path of the machine that ran them, or a token-shaped string."
    found = []
    for path in sorted(NBS.glob("*.ipynb")):
        for i, cell in enumerate(notebook(path.name).cells):
            for out in cell.get("outputs", []):
                for m in LEAKS.finditer(output_text(out)): found.append(f"{path.name} cell {i}: {m[0]!r}")
    for path in sorted((NBS/"results").glob("*.json")):
        for m in LEAKS.finditer(path.read_text()): found.append(f"{path.relative_to(ROOT)}: {m[0]!r}")
    assert not found, "\n".join(found[:20])


TOKEN_IN_CODE = re.compile(r"(?:notebook_)?login\(\s*(?:token\s*=\s*)?[\"']|(?:HF_TOKEN|HUGGING_FACE_HUB_TOKEN)\"?\]?\s*=\s*[\"']")


def test_no_cell_holds_a_token_or_logs_in_with_one():
    "Tokens come from the environment (HF_TOKEN) or Colab's secrets, which huggingface_hub reads itself; never from a cell, which the notebook would save."
    found = []
    for path in sorted(NBS.glob("*.ipynb")):
        for i, cell in enumerate(notebook(path.name).cells):
            for m in [*LEAKS.finditer(cell.source), *TOKEN_IN_CODE.finditer(cell.source)]:
                if not m[0].startswith("/"): found.append(f"{path.name} cell {i}: {m[0]!r}")
    assert not found, "\n".join(found)
    for bad in ('login("hf_x")', "notebook_login(token='abc')", 'os.environ["HF_TOKEN"] = "hf_x"'):
        assert TOKEN_IN_CODE.search(bad), bad
    assert not TOKEN_IN_CODE.search('token = os.environ.get("HF_TOKEN")')


def test_leak_pattern_catches_what_it_should():
    "The pattern of the test above finds the leaks it exists for, and passes the placeholders the outputs use."
    for bad in ("/root/.cache/x", "saved to /tmp/tmpab12/model", "/home/ana/data.csv", "hf_" + "a1B2" * 9):
        assert LEAKS.search(bad), bad
    for fine in ("<tmp>/tmpab12/model", "<site-packages>/timm", "runs/sentiment/model", "hf_hub_download"):
        assert not LEAKS.search(fine), fine


def test_sidebar_lists_every_notebook_once():
    "nbs/sidebar.yml (Quarto's sidebar, also the offline site's) lists each notebook exactly once."
    contents = yaml.safe_load((NBS/"sidebar.yml").read_text())["website"]["sidebar"]["contents"]
    listed = [x for item in contents for x in ([item] if isinstance(item, str) else item["contents"])]
    assert sorted(listed) == sorted(p.name for p in NBS.glob("*.ipynb")) and len(listed) == len(set(listed)), listed


def test_pages_workflow_builds_with_quarto():
    "The GitHub Pages workflow renders the site with nbdev-docs (Quarto) and publishes the folder nbdev writes."
    wf = yaml.safe_load((ROOT/".github"/"workflows"/"pages.yml").read_text())
    steps = [s for job in wf["jobs"].values() for s in job.get("steps", [])]
    runs = " ".join(s.get("run", "") for s in steps)
    uses = " ".join(s.get("uses", "") for s in steps)
    assert "nbdev-docs" in runs and "quarto-dev/quarto-actions/setup" in uses and "actions/deploy-pages" in uses
    doc_path = tomllib.loads((ROOT/"pyproject.toml").read_text())["tool"]["nbdev"]["doc_path"]
    assert any(s.get("with", {}).get("path") == doc_path for s in steps), f"the workflow must upload {doc_path}"


# ---- the built site in a browser -------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def site():
    "Build the site with its one command, and serve it on loopback."
    proc = subprocess.run([sys.executable, "tools/build_site.py"], cwd=ROOT, capture_output=True, text=True,
                          env=subprocess_env(threads=1))
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(DOCS))
    handler.log_message = lambda *a: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()


def page_names() -> dict:
    "Notebook -> page file, from the processed notebooks' front matter (what the site builder uses)."
    sys.path.insert(0, str(ROOT/"tools"))
    from build_site import frontmatter, page_name, read_processed
    return {p.name: page_name(p, frontmatter(read_processed(p))) for p in sorted((ROOT/"_proc").glob("*.ipynb"))}


def test_site_pages_render_in_chromium(site):
    pages = page_names()
    assert set(pages) == {p.name for p in NBS.glob("*.ipynb")}, "a notebook has no page"
    problems, ids, links = [], {}, []
    with browser() as b:
        page = b.new_page(viewport={"width": 1400, "height": 1000})
        events = []
        page.on("console", lambda m: events.append(f"console {m.type}: {m.text}") if m.type == "error" else None)
        page.on("pageerror", lambda e: events.append(f"page error: {e}"))
        page.on("requestfailed", lambda r: events.append(f"request failed: {r.url}"))
        page.on("response", lambda r: events.append(f"HTTP {r.status}: {r.url}") if r.status >= 400 else None)
        for nb, file in pages.items():
            events.clear()
            page.goto(urljoin(site, file), wait_until="load")
            where = f"{file} ({nb})"
            problems += [f"{where}: {e}" for e in events]
            title = next(c.source.splitlines()[0][2:].strip() for c in notebook(nb).cells
                         if c.cell_type == "markdown" and c.source.startswith("# "))
            if page.inner_text("h1.page-title").strip() != title or title not in page.title():
                problems.append(f"{where}: title {page.inner_text('h1.page-title')!r}, expected {title!r}")
            for src, w, h in page.eval_on_selector_all("img", "els => els.map(e => [e.getAttribute('src').slice(0, 60), "
                                                              "e.naturalWidth, e.getBoundingClientRect().height])"):
                if not (w > 0 and h > 0): problems.append(f"{where}: image {src} did not render ({w} x {h})")
            stored = sum(bool(o.get("data", {}).get("image/png")) for c in code_cells(notebook(nb)) for o in c.outputs)
            shown = page.eval_on_selector_all(".jp-OutputArea-output img", "els => els.length")
            if shown < stored: problems.append(f"{where}: {shown} plots shown of the {stored} stored")
            ids[file] = set(page.eval_on_selector_all("[id]", "els => els.map(e => e.id)"))
            links += [(file, h) for h in page.eval_on_selector_all("a[href]", "els => els.map(e => e.getAttribute('href'))")]
            if nb in RECIPES:
                colab = f"{COLAB}/blob/main/nbs/{nb}"
                if not page.query_selector(f'a[href="{colab}"] img'): problems.append(f"{where}: no Colab badge to {colab}")
            if nb in ("index.ipynb", "10_sentiment.ipynb"): screenshot(page, f"site_{file.replace('.html', '.png')}")
    for file, href in links:
        u = urlparse(href)
        if u.scheme or href.startswith("//"): continue  # external: not fetched (no network), not checked
        target = file if not u.path else u.path
        if not (DOCS/target).is_file(): problems.append(f"{file}: link to {href}: no such page"); continue
        if u.fragment and target in ids and u.fragment not in ids[target]:
            problems.append(f"{file}: link to {href}: no #{u.fragment} on {target}")
    assert not problems, "\n".join(problems[:40])


def test_readme_has_a_colab_badge_per_recipe():
    readme = (ROOT/"README.md").read_text()
    missing = [nb for nb in RECIPES if f"]({COLAB}/blob/main/nbs/{nb})" not in readme]
    assert not missing, f"README: no Colab badge for {missing}"
