"""The sentiment recipe notebook opens and renders in JupyterLab.

Starts JupyterLab on loopback with a random token over the repository's nbs/ folder, with its own config, runtime,
settings and workspace folders (the user's ~/.jupyter is neither read nor written) and with everything that would reach
the internet switched off. Headless Chromium then opens nbs/10_sentiment.ipynb and checks that the notebook panel shows
all of its cells, that its first cell is the title rendered as an h1, that the notebook has no unsaved changes once
open, that every code cell with stored outputs shows them (images
included), that no dialog pops up, that no kernel is started, that nothing is written back to the notebook, and that the
browser console stays free of errors. A screenshot goes to test-artifacts/jupyterlab_10_sentiment.png. Finally the
server is stopped and its log must hold no error lines."""
import json
import os
import re
import secrets
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest

from browser import ROOT, browser, free_port, screenshot

NOTEBOOK = "10_sentiment.ipynb"
TITLE = "Sentiment analysis"

# User settings for the temporary JUPYTERLAB_SETTINGS_DIR, as `{plugin id: settings}`.
SETTINGS = {
    # Lab 4 virtualises long notebooks and attaches only the cells near the viewport: attach them all, so that the test
    # can see every cell and every output.
    "@jupyterlab/notebook-extension:tracker": {"windowingMode": "none"},
    # Never write to the repository's notebook, whatever the test finds (a notebook that Lab changes on opening, such as one
    # without `language_info` in its metadata, would otherwise be saved by autosave).
    "@jupyterlab/docmanager-extension:plugin": {"autosave": False},
    # Without this Lab 4 shows a toast asking whether to fetch Jupyter news (a request to jupyterlab.github.io);
    # "false" is "Never". The server side is switched off too (news_url, check_for_updates_class below).
    "@jupyterlab/apputils-extension:notification": {"fetchNews": "false", "checkForUpdates": False},
}

# The ipywidgets manager (jupyterlab_widgets 3.0) fails on a notebook without a kernel: it reads
# `sessionContext.session.kernel.id` while the session is null, an uncaught "TypeError: Cannot read properties of null
# (reading 'kernel')" in the console (jupyter-widgets/ipywidgets#3980, open). We open the notebook without a kernel, so
# that extension is switched off; widget outputs then show their text/plain fallback, as they would with no kernel anyway.
DISABLED = {"@jupyter-widgets/jupyterlab-manager": True}

ERROR_LINE = re.compile(r"^\[[EC] \d{4}-|Traceback")  # `[E 2026-01-01 12:00:00.000 ServerApp] ...`, and critical ones


def write_settings(settings_dir):
    "Write SETTINGS as `<settings dir>/<package>/<plugin>.jupyterlab-settings` files."
    for plugin_id, values in SETTINGS.items():
        package, plugin = plugin_id.split(":")
        path = settings_dir/package/f"{plugin}.jupyterlab-settings"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(values))


def api(port: int, token: str, path: str):
    "GET http://127.0.0.1:PORT/PATH with the token, as JSON."
    req = urllib.request.Request(f"http://127.0.0.1:{port}/{path}", headers={"Authorization": f"token {token}"})
    with urllib.request.urlopen(req, timeout=5) as resp: return json.load(resp)


def start_lab(tmp_path, port: int, token: str, log):
    "Start `jupyter lab` serving nbs/ on 127.0.0.1:PORT, stdout and stderr to `log`."
    dirs = {name: tmp_path/name for name in ("config", "runtime", "settings", "workspaces", "checkpoints", "notary")}
    for d in dirs.values(): d.mkdir()
    write_settings(dirs["settings"])
    # Page config read from JUPYTER_CONFIG_DIR/labconfig/ (what `jupyter labextension disable --level=user` writes).
    (dirs["config"]/"labconfig").mkdir()
    (dirs["config"]/"labconfig"/"page_config.json").write_text(json.dumps({"disabledExtensions": DISABLED}))
    env = dict(os.environ,
               JUPYTER_CONFIG_DIR=str(dirs["config"]),  # not ~/.jupyter: no user config read, none written
               JUPYTER_RUNTIME_DIR=str(dirs["runtime"]),  # server info and cookie secret files
               JUPYTERLAB_SETTINGS_DIR=str(dirs["settings"]),  # SETTINGS above
               JUPYTERLAB_WORKSPACES_DIR=str(dirs["workspaces"]))  # Lab saves the open tabs here
    # JUPYTER_DATA_DIR stays as it is, so that Lab finds its extensions as usual; what the server would write there is
    # redirected (NotebookNotary below).
    cmd = [sys.executable, "-m", "jupyterlab", "--no-browser", "--allow-root",
           "--ip=127.0.0.1", f"--port={port}", "--ServerApp.port_retries=0",  # that port or fail, never another one
           f"--IdentityProvider.token={token}",  # (ServerApp.token is deprecated in jupyter_server 2)
           f"--ServerApp.root_dir={ROOT/'nbs'}",
           # Lab copies a notebook to a checkpoint as it opens it: into tmp_path, not into nbs/.ipynb_checkpoints/
           # (an absolute checkpoint_dir is used as it is, not under the notebook's folder).
           f"--FileCheckpoints.checkpoint_dir={dirs['checkpoints']}",
           # The trust check on opening a notebook creates a signature database and a secret in the user's
           # ~/.local/share/jupyter: into tmp_path instead.
           f"--NotebookNotary.data_dir={dirs['notary']}",
           # Offline: no news feed and no update check from the server (both fetch from the internet), and an
           # extension manager that does not query PyPI.
           "--LabApp.news_url=None", "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
           "--LabApp.extension_manager=readonly",
           # Opening the notebook must not start a kernel: the page shows "No Kernel" instead.
           "--LabApp.notebook_starts_kernel=False"]
    return subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env, cwd=tmp_path)


def wait_for_server(proc, port: int, token: str, log_path, timeout: float = 60):
    "Poll /api/status until the server answers; fail with its log if it exits or does not answer in time."
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"jupyter lab exited with {proc.returncode}:\n{log_path.read_text()}")
        try:
            api(port, token, "api/status")
            return
        except (urllib.error.URLError, ConnectionError, TimeoutError): time.sleep(0.25)
    pytest.fail(f"jupyter lab did not answer on port {port} within {timeout:.0f} s:\n{log_path.read_text()}")


def stop_lab(proc, port: int, token: str):
    """Stop the server through its /api/shutdown and wait for it to exit (status 0).

    Not SIGTERM: jupyter_server logs a signal at the critical level (`[C ... ServerApp] received signal 15, stopping`),
    which the log check would count as an error; /api/shutdown runs the same clean-up and logs at the info level."""
    req = urllib.request.Request(f"http://127.0.0.1:{port}/api/shutdown", method="POST",
                                 headers={"Authorization": f"token {token}"})
    with urllib.request.urlopen(req, timeout=20): pass
    assert proc.wait(timeout=20) == 0, f"jupyter lab exited with {proc.returncode}"


def expected_outputs(nb_path):
    "Indices (among code cells) of the code cells with stored outputs, and the number of image/png outputs."
    cells = json.loads(nb_path.read_text())["cells"]
    code = [c for c in cells if c["cell_type"] == "code"]
    shows = lambda o: o["output_type"] != "stream" or "".join(o.get("text", "")).strip()  # a blank stream shows nothing
    with_outputs = [i for i, c in enumerate(code) if any(shows(o) for o in c.get("outputs", []))]
    pngs = sum("image/png" in o.get("data", {}) for c in code for o in c.get("outputs", []))
    return len(cells), with_outputs, pngs


def check_page(page, port: int, token: str, n_cells: int, code_with_outputs: list, n_png: int):
    "Open NOTEBOOK in `page` and check what it shows."
    page.goto(f"http://127.0.0.1:{port}/lab/tree/{NOTEBOOK}?token={token}")
    panel = page.locator(".jp-NotebookPanel")
    panel.wait_for(state="visible", timeout=30_000)
    # All cells in the DOM (windowing is off), and every stored output rendered.
    page.wait_for_function(f"document.querySelectorAll('.jp-NotebookPanel .jp-Cell').length >= {n_cells}",
                           timeout=20_000)
    assert panel.locator(".jp-Cell").count() == n_cells
    # The title is the first thing a reader sees: the first cell, not a raw front-matter cell.
    h1 = panel.locator(".jp-Cell").first.locator(".jp-RenderedMarkdown h1").first
    h1.wait_for(state="visible", timeout=10_000)
    assert h1.inner_text().strip().rstrip("¶").strip() == TITLE
    if code_with_outputs:
        page.wait_for_function(
            "n => document.querySelectorAll('.jp-NotebookPanel .jp-CodeCell .jp-OutputArea-output').length >= n",
            arg=len(code_with_outputs), timeout=20_000)
    rendered = panel.evaluate("""p => [...p.querySelectorAll('.jp-CodeCell')].flatMap((cell, i) =>
        [...cell.querySelectorAll('.jp-OutputArea-output')].some(o =>
            o.textContent.trim() || o.querySelector('img, svg, canvas, iframe, table')) ? [i] : [])""")
    assert rendered == code_with_outputs, "code cells showing outputs differ from the cells that have some"
    if n_png:
        page.wait_for_function("""n => [...document.querySelectorAll('.jp-OutputArea-output img')]
            .filter(img => img.complete && img.naturalWidth > 0).length >= n""", arg=n_png, timeout=20_000)
    # Every image in the notebook (the Colab badge in the markdown, plots in the outputs) loaded.
    page.wait_for_function("""() => [...document.querySelectorAll('.jp-NotebookPanel img')]
        .every(img => img.complete)""", timeout=10_000)
    broken = panel.evaluate("p => [...p.querySelectorAll('img')].filter(i => !i.naturalWidth).map(i => i.src)")
    assert not broken, f"images that did not load: {broken}"
    # No kernel was started and none is asked for: no dialog (kernel picker, kernel error), "No Kernel".
    page.wait_for_load_state("networkidle")
    assert page.locator(".jp-Dialog").count() == 0, page.locator(".jp-Dialog").first.inner_text()
    assert page.locator(".jp-NotebookPanel .jp-Toolbar-kernelName").inner_text().strip() == "No Kernel"
    assert api(port, token, "api/kernels") == []
    # Opening changed nothing: Lab marks the tab dirty when its model differs from the file as loaded.
    page.wait_for_timeout(1000)
    dirty = page.locator(".lm-TabBar-tab.jp-mod-dirty")
    assert dirty.count() == 0, f"unsaved changes right after opening: {dirty.first.inner_text()}"


def test_sentiment_notebook_renders_in_jupyterlab(tmp_path):
    """JupyterLab shows nbs/10_sentiment.ipynb: all cells, the h1 title and the stored outputs, with no dialog, no kernel,
    no write to the notebook, no browser console error and no error in the server log."""
    n_cells, code_with_outputs, n_png = expected_outputs(ROOT/"nbs"/NOTEBOOK)
    port, token = free_port(), secrets.token_hex(24)
    log_path = tmp_path/"jupyterlab.log"
    with open(log_path, "wb") as log:
        proc = start_lab(tmp_path, port, token, log)
        try:
            wait_for_server(proc, port, token, log_path)
            with browser() as b:
                page = b.new_page(viewport={"width": 1400, "height": 1000})
                errors, writes = [], []
                page.on("console", lambda msg: errors.append(f"console: {msg.text}") if msg.type == "error" else None)
                page.on("pageerror", lambda exc: errors.append(f"pageerror: {exc}"))
                # Any write to nbs/ but the checkpoint Lab makes on opening (which goes to tmp_path, see start_lab).
                page.on("request", lambda req: writes.append(f"{req.method} {req.url}")
                        if "/api/contents/" in req.url and req.method != "GET"
                        and not (req.method == "POST" and "/checkpoints" in req.url) else None)

                try: check_page(page, port, token, n_cells, code_with_outputs, n_png)
                finally: screenshot(page, "jupyterlab_10_sentiment.png")  # also when a check fails, to see why
                assert not writes, f"JupyterLab wrote to the repository's notebooks: {writes}"
                assert list((tmp_path/"checkpoints").iterdir()), "Lab's checkpoint did not go to tmp_path"
                assert not errors, "browser console errors:\n" + "\n".join(errors)
            stop_lab(proc, port, token)
        finally:
            if proc.poll() is None:  # the test failed before stop_lab, or the server did not stop: SIGTERM, then SIGKILL
                proc.terminate()
                try: proc.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
    log_text = log_path.read_text(errors="replace")
    bad = [line for line in log_text.splitlines() if ERROR_LINE.search(line)]
    assert not bad, "errors in the JupyterLab log:\n" + log_text


def first_cells():
    "(notebook, its first cell) for every notebook in nbs/."
    return [(p.name, json.loads(p.read_text())["cells"][0]) for p in sorted((ROOT/"nbs").glob("*.ipynb"))]


@pytest.mark.parametrize("nb,cell", first_cells(), ids=lambda x: x if isinstance(x, str) else "")
def test_notebook_opens_on_its_title(nb, cell):
    "The first cell of every notebook is its `# Title` markdown (nbdev reads the page title there), not front matter."
    assert cell["cell_type"] == "markdown" and "".join(cell["source"]).startswith("# "), \
        f"{nb} opens on a {cell['cell_type']} cell: {''.join(cell['source'])[:60]!r}"


def test_notebooks_store_what_jupyterlab_would_add():
    """Each notebook stores `language_info` (JupyterLab adds `{"name": ""}` to one without it as it opens it, so the tab
    shows unsaved changes at once), and the notebooks that run recipes (the recipes, 1x; experiments and after
    deployment, 2x) carry nbdev's `skip_exec` in their metadata, where nbdev-test reads it (papermill runs them, with
    their smoke preset), instead of a raw front-matter cell above the title."""
    from fastcore.nbio import nb_frontmatter, read_nb
    for path in sorted((ROOT/"nbs").glob("*.ipynb")):
        meta = json.loads(path.read_text())["metadata"]
        assert meta.get("language_info", {}).get("name") == "python", f"{path.name}: no language_info"
        recipe = re.match(r"^(1\d|2\d)_", path.name) is not None
        assert bool(nb_frontmatter(read_nb(path)).get("skip_exec")) == recipe, \
            f"{path.name}: nbdev-test would {'run' if recipe else 'skip'} it"
