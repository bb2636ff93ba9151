"""The docs site: built offline with one command, opened page by page in headless Chromium; the committed notebooks
carry real outputs with their provenance, the Colab badge and install cell, and no machine paths or tokens.

The browser test serves `_docs/` over HTTP on loopback and opens every page: no console errors and no failed request,
its title shown, every image (plots, badges) actually decoded with a non-zero size, every internal link and anchor
resolving, and a Colab badge pointing at the page's own notebook on each recipe page. Screenshots of the home page and
the sentiment recipe go to test-artifacts/. The reading tests check what a reader relies on: code and tables that fit
their column at 1280 and 390 px, the search box (and its `/` key) finding a recipe, the title and first paragraph in a
phone's first screen with the sidebar behind a button, the table of contents at laptop widths and marking the section
read, sections reached by a link showing below the header, copy buttons, previous/next and issue links, callouts,
heading ids as Quarto writes them, a print layout without the frame, dark mode, and API signatures that read as the
code."""
import functools
import importlib.util
import http.server
import io
import json
import re
import shlex
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
from PIL import Image

from browser import browser, screenshot
from conftest import NBS, ROOT, build_wheel, subprocess_env, RECIPE_NOTEBOOKS

DOCS = ROOT/"_docs"
RECIPES = RECIPE_NOTEBOOKS
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


def test_colab_install_cell_with_the_built_wheel_would_not_reinstall_torch(monkeypatch, tmp_path):
    "The cell's %pip, the repository's wheel in place of its git URL, in a fresh venv that holds torch (as Colab does): pip would install ftrecipes and leave torch alone."
    source = code_cells(notebook("10_sentiment.ipynb"))[0].source
    line, = colab_install_command(source, on_colab=True, installed=False, monkeypatch=monkeypatch)
    wheel = build_wheel(tmp_path)
    args = [str(wheel) if a.startswith("ftrecipes @") else a for a in shlex.split(line) if a not in ("install", "-q")]
    venv = tmp_path/"colab"
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", "--without-pip", str(venv)], check=True)
    report = tmp_path/"report.json"
    proc = subprocess.run([str(venv/"bin"/"python"), "-m", "pip", "install", "--dry-run", "--no-index", "--quiet",
                           "--report", str(report), *args], capture_output=True, text=True)  # --no-index: no network
    assert proc.returncode == 0, proc.stderr[-3000:]
    names = [i["metadata"]["name"].lower() for i in json.loads(report.read_text())["install"]]
    assert "ftrecipes" in names and "torch" not in names, names


@pytest.mark.parametrize("nb", RECIPES)
def test_recipe_notebook_holds_outputs_of_a_real_run(nb):
    "Every code cell that ran shows its outputs; the last one ends with the provenance line of a real (not smoke) run."
    cells = code_cells(notebook(nb))
    assert sum(bool(c.outputs) for c in cells) >= len(cells) // 3, \
        f"{nb} holds almost no outputs: run `python tools/run_notebooks.py {Path(nb).stem}` and commit"
    assert not any(o.output_type == "error" for c in cells for o in c.outputs), f"{nb}: a stored output is an error"
    last = "\n".join(output_text(o) for o in cells[-1].outputs)  # one output per line: a reading may come first
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


def test_quarto_site_has_the_same_reading_aids():
    "The published (Quarto) site asks for what the offline one has: search, copy buttons, wrapped code, a table of contents, previous/next, an issue link."
    q = yaml.safe_load((NBS/"_quarto.yml").read_text())
    html_fmt, site = q["format"]["html"], q["website"]
    assert html_fmt.get("code-copy") and html_fmt.get("code-overflow") == "wrap" and html_fmt.get("toc"), html_fmt
    assert site["navbar"].get("search") and site.get("page-navigation") and "issue" in site.get("repo-actions", []), site
    assert re.search(r"\.cell-output-display\s*\{[^}]*overflow-x:\s*auto", (NBS/"styles.css").read_text()), \
        "wide outputs must scroll in their own box on the published site too (nbs/styles.css)"


# ---- the built site in a browser -------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def site():
    "Build the site with its one command, and serve it on loopback."
    proc = subprocess.run([sys.executable, "tools/build_site.py"], cwd=ROOT, capture_output=True, text=True,
                          env=subprocess_env(threads=1))
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args): pass  # one line per request would bury a failure's own output
    handler = functools.partial(Quiet, directory=str(DOCS))
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


# ---- reading the site: code and tables fit, search, a phone, copy buttons, navigation --------------------------------

FIT_JS = """() => {
  // code blocks that scroll sideways or stick out of their column; tables wider than their column with no scrolling
  // box of their own inside it; and the page itself wider than the window
  const problems = [];
  const column = el => (el.closest('.jp-Cell') || el.closest('main')).getBoundingClientRect();
  const name = el => el.tagName.toLowerCase() + ' "' + el.innerText.slice(0, 50).replace(/\\s+/g, ' ') + '"';
  for (const pre of document.querySelectorAll('main pre')) {
    if (!pre.getClientRects().length) continue;
    const r = pre.getBoundingClientRect(), c = column(pre);
    if (pre.scrollWidth > pre.clientWidth + 1) problems.push(`${name(pre)}: ${pre.scrollWidth} px of code in ${pre.clientWidth} px`);
    else if (r.right > c.right + 1) problems.push(`${name(pre)}: ends at ${r.right | 0} px, its column at ${c.right | 0} px`);
  }
  for (const table of document.querySelectorAll('main table')) {
    const r = table.getBoundingClientRect(), c = column(table);
    if (r.right <= c.right + 1) continue;
    let box = table.parentElement;
    while (box && box.tagName !== 'MAIN' && !['auto', 'scroll'].includes(getComputedStyle(box).overflowX)) box = box.parentElement;
    const b = box && box.tagName !== 'MAIN' ? box.getBoundingClientRect() : null;
    if (!b || b.right > c.right + 1 || box.scrollWidth < table.scrollWidth)
      problems.push(`${name(table)}: ${r.width | 0} px wide in a ${c.width | 0} px column, no scrolling box inside it`);
  }
  const page = document.scrollingElement.scrollWidth;
  if (page > window.innerWidth + 1) problems.push(`the page is ${page} px wide in a ${window.innerWidth} px window`);
  return problems;
}"""


def test_code_and_tables_fit_their_column(site):
    "At 1280 and 390 px: code wraps in its column, a table fits or scrolls in a box of its own, the page never scrolls sideways; the home page's tables fit at 1280 px."
    problems = []
    with browser() as b:
        for width in (1280, 390):
            page = b.new_page(viewport={"width": width, "height": 900})
            for nb, file in page_names().items():
                page.goto(urljoin(site, file), wait_until="load")
                problems += [f"{file} at {width} px: {p}" for p in page.evaluate(FIT_JS)]
                if file == "index.html" and width == 1280:
                    for w, col in page.eval_on_selector_all("main table", "els => els.map(t => [t.getBoundingClientRect().width, "
                                                            "t.closest('.jp-Cell').getBoundingClientRect().width])"):
                        if w > col: problems.append(f"index.html at 1280 px: a table {w:.0f} px wide in a {col:.0f} px column")
            page.close()
    assert not problems, "\n".join(problems[:40])


def test_search_finds_a_recipe_page(site):
    "The search box (Pagefind's index, built with the site) finds the sentiment recipe by a word on its page."
    term = "VADER"
    assert any(term in c.source for c in notebook("10_sentiment.ipynb").cells), f"the sentiment notebook no longer says {term}"
    with browser() as b:
        page = b.new_page(viewport={"width": 1280, "height": 900})
        errors = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(urljoin(site, "index.html"), wait_until="load")
        page.keyboard.press("/")  # the shortcut to the search box
        assert page.evaluate("() => document.activeElement === document.querySelector('#search input')"), "/ does not focus search"
        page.keyboard.type(term)
        page.wait_for_selector("#search .pagefind-ui__result-link", timeout=15000)
        hits = page.eval_on_selector_all("#search .pagefind-ui__result-link", "els => els.map(e => e.getAttribute('href'))")
        assert not errors, errors
        assert any(urlparse(h).path.rsplit("/", 1)[-1] == "sentiment.html" for h in hits), hits
        screenshot(page, "site_search.png")


FIRST_SCREEN_JS = """() => {
  // where the title and the first paragraph of the content start, and the first visible table of contents
  const top = el => el ? el.getBoundingClientRect().top : null;
  const prose = [...document.querySelectorAll('main .jp-Cell .jp-RenderedMarkdown p')].find(p => p.getClientRects().length);
  const toc = [...document.querySelectorAll('.toc a')].find(a => a.getClientRects().length);
  return {title: top(document.querySelector('h1.page-title')), prose: top(prose), toc: toc ? toc.closest('.toc').className : null};
}"""


def test_phone_and_laptop_layout(site):
    "At 390 px the title and the first paragraph are in the first screen and the sidebar opens from a button; at 1024 and 1280 px the table of contents shows and the title still comes first."
    with browser() as b:
        page = b.new_page(viewport={"width": 390, "height": 800})
        for file in ("index.html", "sentiment.html", "image_classification.html"):
            page.goto(urljoin(site, file), wait_until="load")
            where = page.evaluate(FIRST_SCREEN_JS)
            assert where["title"] < 200 and where["prose"] < 800, f"{file} at 390 px: title at {where['title']:.0f} px, " \
                f"the first paragraph at {where['prose']:.0f} px in an 800 px screen"
        assert not page.is_visible(".sidebar a.active"), "the sidebar is open on a phone before anyone asked"
        page.click(".nav-toggle")
        assert page.is_visible(".sidebar a.active"), "the menu button does not open the sidebar"
        screenshot(page, "site_phone_menu.png")
        page.keyboard.press("Escape")
        assert not page.is_visible(".sidebar a.active"), "Escape does not close the sidebar"
        page.reload(wait_until="load")
        page.keyboard.press("Tab")  # the first stop of the keyboard: past the header and the sidebar to the content
        assert page.evaluate("() => document.activeElement.getAttribute('href')") == "#content"
        page = b.new_page(viewport={"width": 1280, "height": 600})  # a page low in a sidebar longer than the window
        page.goto(urljoin(site, page_names()["22_after_deployment.ipynb"]), wait_until="load")
        assert page.eval_on_selector(".sidebar a.active", "a => { const r = a.getBoundingClientRect(); "
                                     "return r.top >= 52 && r.bottom <= window.innerHeight; }"), "the sidebar hides the current page"
        for width, toc in ((1024, "toc toc-inline"), (1280, "toc toc-side")):
            page = b.new_page(viewport={"width": width, "height": 800})
            page.goto(urljoin(site, "sentiment.html"), wait_until="load")
            where = page.evaluate(FIRST_SCREEN_JS)
            assert where["toc"] == toc, f"at {width} px the table of contents shown is {where['toc']!r}, expected {toc!r}"
            assert where["title"] < 150 and where["prose"] < 800, f"at {width} px: {where}"
            if width == 1280:  # a section reached from the contents shows below the sticky header, and is marked
                link = page.locator(".toc-side a").nth(6)
                target = link.get_attribute("href")
                link.click()
                page.wait_for_timeout(300)
                header = page.eval_on_selector(".site-header", "e => e.getBoundingClientRect().bottom")
                top = page.evaluate("id => document.getElementById(id).getBoundingClientRect().top", target[1:])
                assert header <= top < header + 40, f"{target} lands at {top:.0f} px under a header ending at {header:.0f} px"
                assert page.eval_on_selector_all(".toc-side a.active", "els => els.map(e => e.getAttribute('href'))") == [target]
                page.evaluate("() => window.scrollTo(0, document.scrollingElement.scrollHeight)")
                page.wait_for_timeout(300)
                last = page.eval_on_selector_all(".toc-side a", "els => els[els.length - 1].getAttribute('href')")
                assert page.eval_on_selector_all(".toc-side a.active", "els => els.map(e => e.getAttribute('href'))") == [last], \
                    "at the bottom of the page the last section is not the one marked"
            page.emulate_media(media="print")
            assert not page.is_visible(".sidebar") and not page.is_visible("#search"), "the sidebar or search would print"
            assert not page.locator(".toc a:visible").count(), "the table of contents would print"


RECORD_COPIES = """
  // what the page hands to the clipboard, by either of the copy handler's two ways (the Clipboard API, or a selected
  // textarea and execCommand where that API is unavailable), recorded so the test can read it without a clipboard
  window.__copied = [];
  if (navigator.clipboard) {
    const write = navigator.clipboard.writeText.bind(navigator.clipboard);
    navigator.clipboard.writeText = t => { window.__copied.push(t); return write(t); };
  }
  const exec = document.execCommand.bind(document);
  document.execCommand = (c, ...a) => { if (c === 'copy') window.__copied.push(document.activeElement.value); return exec(c, ...a); };
"""


def test_copy_button_copies_the_code(site):
    "The copy button of a code cell, and of a code block in prose, hands exactly that code to the clipboard."
    with browser() as b:
        context = b.new_context(viewport={"width": 1280, "height": 900}, permissions=["clipboard-read", "clipboard-write"])
        context.add_init_script(RECORD_COPIES)
        page = context.new_page()
        for file, selector, index in (("sentiment.html", "main .jp-InputArea-editor .has-copy", 3),
                                      ("index.html", "main .jp-RenderedMarkdown .has-copy", 0)):
            page.goto(urljoin(site, file), wait_until="load")
            blocks = page.query_selector_all(selector)
            assert len(blocks) > index, f"{file}: {len(blocks)} code blocks with a copy button ({selector})"
            block = blocks[index]
            code = block.eval_on_selector("pre", "e => e.innerText.replace(/\\n$/, '')")
            button = block.query_selector(".copy-button")
            block.hover()
            button.click()
            page.wait_for_function("b => b.textContent !== 'Copy'", arg=button, timeout=5000)
            assert page.evaluate("() => window.__copied") == [code], f"{file}: the button copied something else"
            if button.text_content() == "Copied":  # the clipboard took it: read it back
                assert page.evaluate("() => navigator.clipboard.readText()") == code, file
            else:
                assert button.text_content() == "Select and copy", button.text_content()


def test_previous_next_and_issue_links(site):
    "Each page links the previous and next page in the sidebar's order, and the repository's issues."
    sys.path.insert(0, str(ROOT/"tools"))
    from build_site import sidebar_entries
    names = page_names()
    order = [names[nb] for _, nbs in sidebar_entries(names) for nb in nbs]
    with browser() as b:
        page = b.new_page()
        for i, file in enumerate(order):
            page.goto(urljoin(site, file), wait_until="load")
            prev = page.eval_on_selector_all("a[rel=prev]", "els => els.map(e => e.getAttribute('href'))")
            nxt = page.eval_on_selector_all("a[rel=next]", "els => els.map(e => e.getAttribute('href'))")
            assert prev == order[i - 1:i], (file, prev)
            assert nxt == order[i + 1:i + 2], (file, nxt)
            assert page.get_attribute("a.report-issue", "href") == f"{REPO_URL}/issues", file


def test_callouts_become_boxes():
    "GitHub's `> [!NOTE]` and Quarto's `:::{.callout-warning}` render as styled boxes; an ordinary quote stays a quote."
    from nbconvert.filters.markdown import markdown2html
    sys.path.insert(0, str(ROOT/"tools"))
    from build_site import callouts, quarto_callouts
    md = "> [!NOTE]\n> Runs **offline**.\n\n:::{.callout-warning}\nNeeds a GPU.\n:::\n\n> Just a quote."
    out = callouts(markdown2html(quarto_callouts(md)))
    assert re.search(r'<div class="callout callout-note"[^>]*><p class="callout-title">Note</p><p>\s*Runs <strong>offline</strong>', out), out
    assert re.search(r'class="callout callout-warning".*Needs a GPU', out, re.S), out
    assert "<blockquote>" in out and "Just a quote" in out and "[!" not in out and ":::" not in out, out


def test_api_reference_reads_as_the_code(site):
    "Signatures show `class` for a class and types without `__main__.`; subtitles render `code` instead of backticks."
    training, cli = (DOCS/"training.html").read_text(), (DOCS/"cli.html").read_text()
    assert "__main__" not in re.sub(r"<[^>]+>", "", training), "a signature shows __main__."
    sig = re.search(r'<h3 id="trainconfig">.*?<pre>(.*?)</pre>', training, re.S)[1]
    assert re.sub(r"<[^>]+>", "", sig).startswith("class TrainConfig("), sig[:200]
    sig = re.search(r'<h3 id="training_arguments">.*?<pre>(.*?)</pre>', training, re.S)[1]
    assert re.sub(r"<[^>]+>", "", sig).startswith("def training_arguments("), sig[:200]
    for html_text in (training, cli):
        desc = re.search(r'<p class="page-description">(.*?)</p>', html_text, re.S)[1]
        assert "`" not in desc and "<code>" in desc, desc


def test_heading_ids_are_quartos():
    "Headings get the ids pandoc gives them under Quarto, so a link written for the published site finds its section here."
    sys.path.insert(0, str(ROOT/"tools"))
    from build_site import pandoc_anchors
    body = ('<h2 id="The-learning-rate-schedule,-before-training">x</h2><h3 id="3.-Drift,-before-any-label">y</h3>'
            '<h3 id="TrainConfig">z</h3><a href="#Squad&#39;s-JSON">a</a><a href="training.html#Step-1:-Select">b</a>'
            '<a href="https://github.com/o/r/blob/main/f.py#L40">c</a>')
    out = pandoc_anchors(body)
    for part in ('id="the-learning-rate-schedule-before-training"', 'id="drift-before-any-label"', 'id="trainconfig"',
                 'href="#squads-json"', 'href="training.html#step-1-select"', 'f.py#L40"'):
        assert part in out, (part, out)


def test_dark_mode_follows_the_system(site):
    "With the system in dark mode the page turns dark (its background computes dark) and plots keep their colours."
    with browser() as b:
        page = b.new_page(viewport={"width": 1280, "height": 800}, color_scheme="dark")
        page.goto(urljoin(site, "sentiment.html"), wait_until="load")
        # the page is inverted as a whole: read the colour the reader sees from a screenshot of the empty margin
        shot = Image.open(io.BytesIO(page.screenshot(clip={"x": 1260, "y": 700, "width": 10, "height": 10}))).convert("L")
        assert shot.getextrema()[1] < 80, f"the page stays light in dark mode (brightness {shot.getextrema()[1]})"
        img = page.eval_on_selector(".jp-OutputArea-output img", "e => getComputedStyle(e).filter")
        assert "invert" in img, f"plots are not turned back: {img}"


LESSON_JS = """() => {
  // the page's sections and API blocks in reading order, and any code shown that is a unit test
  const order = [...document.querySelectorAll('main h2, main a.source-link')].map(e =>
    e.tagName === 'H2' ? e.id : 'api:' + e.closest('.jp-Cell').querySelector('h3, h4').id);
  const tests = [...document.querySelectorAll('main .jp-InputArea pre')].map(p => p.innerText)
    .filter(t => /\\btest_(eq|fail|ne|close)\\(/.test(t)).map(t => t.slice(0, 80));
  return {order, tests, callouts: document.querySelectorAll('main .callout').length};
}"""


def test_recipe_pages_read_as_lessons(site):
    "A recipe page: the six steps in order, then its API reference in one section at the end; no unit test shown; a callout."
    pages = page_names()
    with browser() as b:
        page = b.new_page(viewport={"width": 1280, "height": 900})
        for nb in RECIPES:
            page.goto(urljoin(site, pages[nb]), wait_until="load")
            got = page.evaluate(LESSON_JS)
            steps = [s for s in got["order"] if re.match(r"step-\d", s)]
            assert [s[:6] for s in steps] == [f"step-{i}" for i in range(1, 7)], (nb, steps)
            api = got["order"].index("api-reference") if "api-reference" in got["order"] else None
            assert api is not None and got["order"][api - 1] == "try-next", (nb, got["order"][-6:])
            before = [s for s in got["order"][:api] if s.startswith("api:")]
            after = got["order"][api + 1:]
            assert not before and after and all(s.startswith("api:") for s in after), (nb, before, after)
            assert not got["tests"], (nb, got["tests"])
            assert got["callouts"], f"{nb}: no callout"
