"""Build the documentation site into _docs/, offline and without Quarto.

    python tools/build_site.py

The notebooks go through nbdev's own processing, exactly as `nbdev-docs` does it (the API reference that `show_doc`
writes for every exported function, nbdev's directives, links from names to their documentation), into `_proc/`.
nbconvert then renders each processed notebook with its stored outputs (plots, tables, the Trainer's progress
summary) into a page that carries the sidebar of `nbs/sidebar.yml` and a table of contents. What this script adds by
hand is only what Quarto would do and no library does here: the page frame, the sidebar, Quarto's cell options
(`echo`, `output`, `include`) and link rewriting so the pages work from a folder, with no server and no network;
previous/next links, a link to report an issue, callouts (`> [!NOTE]`, `:::{.callout-note}`), tables that scroll in a
box of their own. The search index is Pagefind's (the `pagefind` package of the dev extra brings its binary), built
over the finished pages: static files that the search box reads in the browser. `site.js` adds the search box, copy
buttons and the phone's menu button.

Where Quarto is installed, `nbdev-docs` builds the published site from the same notebooks and `nbs/_quarto.yml`
(the GitHub Pages workflow does that).
"""
import html
import json
import re
import shutil
import sys
from pathlib import Path

import nbformat
import yaml

ROOT = Path(__file__).resolve().parents[1]
NBS = ROOT/"nbs"
sys.path.insert(0, str(ROOT))
from ftrecipes.recipes import recipes  # noqa: E402
RECIPE_NOTEBOOKS = [p.name for p in recipes().values()]  # the registry's recipes, in notebook order
TEMPLATES = Path(__file__).resolve().parent/"site_template"
CELL_KEYS = {"cell_type", "id", "metadata", "source", "outputs", "execution_count", "attachments"}
OPTION = re.compile(r"^#\|\s*([\w-]+)\s*:\s*(.*?)\s*$")


def nbdev_settings():
    from nbdev.config import get_config
    return get_config(path=ROOT)


def process_notebooks(n_workers: int = 2) -> Path:
    "nbdev's doc processing of every notebook into `_proc/` (what `nbdev-docs` hands to Quarto)."
    from nbdev.serve import proc_nbs
    return Path(proc_nbs(path=str(NBS), n_workers=n_workers, force=True))


def read_processed(path: Path):
    "A notebook of `_proc/`: nbdev leaves bookkeeping in it that nbformat's schema rejects (cleaned in `prepare`)."
    from nbformat.v4.rwbase import rejoin_lines
    return rejoin_lines(nbformat.from_dict(json.loads(path.read_text(encoding="utf-8"))))


def frontmatter(nb) -> dict:
    "The YAML front matter nbdev writes as the first raw cell (title, description, output-file)."
    if nb.cells and nb.cells[0].cell_type == "raw" and nb.cells[0].source.startswith("---"):
        return yaml.safe_load(nb.cells[0].source.strip().strip("-")) or {}
    return {}


def page_name(nb_path: Path, fm: dict) -> str:
    return fm.get("output-file") or nb_path.stem + ".html"


def sidebar_entries(pages: dict) -> list:
    "(section or None, [notebook file names]) in the order of nbs/sidebar.yml; unlisted recipes join Recipes, other pages go last."
    contents = yaml.safe_load((NBS/"sidebar.yml").read_text())["website"]["sidebar"]["contents"]
    out, listed = [], set()
    for item in contents:
        if isinstance(item, str): out.append((None, [item])); listed.add(item)
        else:
            out.append((item["section"], list(item["contents"] or []))); listed.update(item["contents"] or [])
    recipes = [n for n in RECIPE_NOTEBOOKS if n in pages and n not in listed]  # a new task needs no sidebar edit
    section = next((entries for name, entries in out if name == "Recipes"), None)
    if section is not None: section.extend(recipes); listed.update(recipes)
    rest = [n for n in pages if n not in listed]
    if rest: out.append(("More", rest))
    return out


def sidebar_html(entries: list, pages: dict, current: str) -> str:
    def link(nb):
        if nb not in pages: raise SystemExit(f"nbs/sidebar.yml lists {nb}, which is not a notebook in nbs/")
        p = pages[nb]
        cls = ' class="active" aria-current="page"' if nb == current else ""
        return f'<li><a href="{p["page"]}"{cls}>{html.escape(p["title"])}</a></li>'
    parts = []
    for section, nbs in entries:
        items = "".join(link(nb) for nb in nbs)
        parts.append(f'<li class="section"><span>{html.escape(section)}</span><ul>{items}</ul></li>' if section else items)
    return f'<ul class="sidebar-list">{"".join(parts)}</ul>'


def signatures(md: str, classes: set) -> str:
    "show_doc's signatures as the code reads: `class` for a class, and a type without the `__main__.` of the notebook's kernel."
    md = re.sub(r"\b__main__\.", "", md)
    return re.sub(r"^(```python\n)def (\w+)\b", lambda m: f"{m[1]}{'class' if m[2] in classes else 'def'} {m[2]}", md, flags=re.M)


def notebook_classes() -> set:
    "The names every notebook defines with `class` (what show_doc documents as a class)."
    return {m for p in NBS.glob("*.ipynb") for c in nbformat.read(p, as_version=4).cells if c.cell_type == "code"
            for m in re.findall(r"^class (\w+)", c.source, re.M)}


CALLOUT_KINDS = ("note", "tip", "important", "warning", "caution")
QUARTO_CALLOUT = re.compile(r"^:::+[ \t]*\{\.callout-(\w+)[^}]*\}[ \t]*\n(.*?)\n:::+[ \t]*$", re.M | re.S)


def quarto_callouts(md: str) -> str:
    "Quarto's `:::{.callout-note}` blocks as GitHub's `> [!NOTE]` blockquotes, which `callouts` then styles."
    return QUARTO_CALLOUT.sub(lambda m: f"> [!{m[1].upper()}]\n" + "\n".join("> " + l for l in m[2].splitlines()), md)


def callouts(body: str) -> str:
    "Blockquotes that open with `[!NOTE]` (GitHub's alerts; also Quarto's callouts, rewritten above) become styled boxes."
    def box(m):
        kind = m[1].lower()
        if kind not in CALLOUT_KINDS: return m[0]
        return (f'<div class="callout callout-{kind}" role="note"><p class="callout-title">{kind.capitalize()}</p>'
                f'{"<p>" if m[2].strip() else ""}{m[2]}</div>')
    return re.sub(r"<blockquote>\s*<p>\s*\[!(\w+)\]\s*(.*?)</blockquote>", box, body, flags=re.S)


def inline_code(text: str) -> str:
    "Plain text with markdown's `code` spans, as HTML (page descriptions come from the front matter, not from markdown)."
    return re.sub(r"`([^`]+)`", r"<code>\1</code>", html.escape(text))


def page_nav(entries: list, pages: dict, current: str) -> str:
    "Previous and next pages, in the sidebar's order."
    order = [nb for _, nbs in entries for nb in nbs]
    i = order.index(current)
    def link(j, rel, label):
        if not 0 <= j < len(order): return f'<span class="page-nav-{rel}"></span>'
        p = pages[order[j]]
        return (f'<a class="page-nav-{rel}" rel="{rel}" href="{p["page"]}"><span>{label}</span>'
                f'{html.escape(p["title"])}</a>')
    return f'<nav class="page-nav" aria-label="Previous and next">{link(i - 1, "prev", "Previous")}{link(i + 1, "next", "Next")}</nav>'


def rewrite_links(text: str, pages: dict, doc_url: str) -> str:
    "Links that work from a folder: the published site's own URLs and notebook names become relative page names."
    # Quarto's link attributes, `[source](url){target="_blank" ...}`, which other markdown renderers print as text
    text = re.sub(r"\[([^\]]*)\]\(([^)\s]+)\)\{[^}]*\}",
                  lambda m: f'<a href="{m[2]}" class="source-link" target="_blank" rel="noopener">{m[1]}</a>', text)
    if doc_url: text = text.replace(doc_url, "")
    def nb_link(m):
        name, anchor = m[2], m[3] or ""
        return f"{m[1]}{pages[name]['page']}{anchor}" if name in pages else m[0]
    return re.sub(r"(\]\(|href=\")([\w-]+\.ipynb)(#[^)\"\s]*)?", nb_link, text)


def prepare(nb, pages: dict, doc_url: str, classes: set = frozenset()):
    "Apply Quarto's cell options as nbconvert tags, drop what only Quarto reads, rewrite links."
    cells = []
    for i, cell in enumerate(nb.cells):
        for key in [k for k in cell if k not in CELL_KEYS]: del cell[key]  # nbdev's bookkeeping (has_sd, idx_)
        cell.metadata.pop("execution", None)  # the doc build's timings, in a form nbformat rejects
        if i == 0 and cell.cell_type == "raw": continue  # front matter: it becomes the page's title
        if cell.cell_type == "markdown" and cell.source.strip() == "<!-- WARNING: THIS FILE WAS AUTOGENERATED! DO NOT EDIT! -->":
            continue
        if cell.cell_type == "markdown": cell.source = quarto_callouts(rewrite_links(cell.source, pages, doc_url))
        if cell.cell_type == "code":
            lines = cell.source.splitlines()
            opts = dict(m.groups() for l in lines if (m := OPTION.match(l)))
            cell.source = "\n".join(l for l in lines if not OPTION.match(l) and not l.startswith("#| ")).strip("\n")
            tags = set(cell.metadata.get("tags", []))
            if opts.get("include") == "false": tags.add("remove_cell")  # (nbdev already dropped `#| hide` cells)
            if opts.get("echo") == "false" or not cell.source: tags.add("remove_input")
            if opts.get("output") == "false": tags.add("remove_output")
            cell.metadata["tags"] = sorted(tags)
            for out in cell.get("outputs", []):
                md = out.get("data", {}).get("text/markdown")
                if isinstance(md, str): out["data"]["text/markdown"] = signatures(rewrite_links(md, pages, doc_url), classes)
            if not cell.source and not cell.get("outputs"): continue
        cells.append(cell)
    nb.cells = cells
    nb.metadata.pop("widgets", None)  # widget state would pull the widget renderer from a CDN
    return nb


def pandoc_id(text: str) -> str:
    "A heading's id as pandoc (and so Quarto) writes it: alphanumerics, `_`, `-` and `.` kept, spaces as `-`, lower case, from the first letter."
    text = re.sub(r"[^\w\s.-]", "", html.unescape(text)).strip()
    text = re.sub(r"\s", "-", text).lower()
    return re.sub(r"^[^a-z]+", "", text) or "section"


def pandoc_anchors(body: str) -> str:
    """Headings' ids and the page's own #fragments as Quarto writes them, so a link written for the published site
    (`training.html#the-learning-rate-schedule-before-training`, nbdev's `#trainconfig`) works here too; nbconvert
    keeps the heading's punctuation and case (`The-learning-rate-schedule,-before-training`)."""
    body = re.sub(r'(<h[1-6][^>]*\sid=")([^"]+)"', lambda m: m[1] + pandoc_id(m[2]) + '"', body)
    return re.sub(r'(href="(?![a-z]+:)[^"#]*#)([^"]+)"', lambda m: m[1] + pandoc_id(m[2]) + '"', body)  # not #L40 on GitHub


def toc_html(body: str, where: str = "side") -> str:
    """On this page: the level-2 and level-3 headings nbconvert gave ids to. The page carries it twice: in the right
    margin ("side", shown when the window has room for three columns) and under the title ("inline", shown on
    narrower windows and phones, where a margin would squeeze the code), so the title always comes first."""
    items = [(int(lvl), hid, re.sub(r"<[^>]+>", "", text).replace("¶", "").strip())
             for lvl, hid, text in re.findall(r'<h([23]) id="([^"]+)"[^>]*>(.*?)</h\1>', body, re.S)]
    if len(items) < 2: return ""
    lis = "".join(f'<li class="toc-h{lvl}"><a href="#{hid}">{text}</a></li>' for lvl, hid, text in items)
    ignore = " data-pagefind-ignore" if where == "inline" else ""  # inside the searched content: not a hit
    return (f'<nav class="toc toc-{where}" aria-label="On this page"{ignore}><details open><summary>On this page</summary>'
            f'<ul>{lis}</ul></details></nav>')


def wrap_tables(body: str) -> str:
    "Every table in its own container that scrolls sideways, so a wide one never pushes the page wider than the screen."
    def wrap(m):  # and a place to break a long identifier after `_`, `:` or `/` (question_answering, tiny:t5)
        table = re.sub(r">([^<]+)<", lambda t: ">" + re.sub(r"(?<=\w)([_:/])(?=\w)", r"\1<wbr>", t[1]) + "<", m[1])
        return f'<div class="table-scroll" tabindex="0">{table}</div>'
    return re.sub(r"(<table\b.*?</table>)", wrap, body, flags=re.S)


def search_index(out_dir: Path) -> bool:
    "Pagefind's full-text index of the built pages (the `pagefind` package brings its binary): static files, no server."
    import subprocess
    try: import pagefind  # noqa: F401
    except ImportError:
        print("no search: pagefind is not installed (pip install -e '.[dev]')", file=sys.stderr)
        return False
    proc = subprocess.run([sys.executable, "-m", "pagefind", "--site", str(out_dir), "--silent"],
                          capture_output=True, text=True)
    if proc.returncode: raise SystemExit(f"pagefind failed:\n{proc.stdout}{proc.stderr}")
    return True


def build(out_dir: Path = ROOT/"_docs", n_workers: int = 2) -> list:
    from nbconvert import HTMLExporter
    from nbconvert.preprocessors import TagRemovePreprocessor
    from traitlets.config import Config
    cfg = nbdev_settings()
    doc_url = f"{cfg.doc_host.rstrip('/')}{cfg.doc_baseurl.rstrip('/')}/" if cfg.get("doc_host") else ""
    repo_url = cfg.get("git_url", "").rstrip("/")
    proc = process_notebooks(n_workers)
    nbs = {p.name: read_processed(p) for p in sorted(proc.glob("*.ipynb"))}
    pages = {}
    for name, nb in nbs.items():
        fm = frontmatter(nb)
        pages[name] = dict(page=page_name(Path(name), fm), title=fm.get("title", Path(name).stem),
                           description=fm.get("description", ""))
    entries = sidebar_entries(pages)
    classes = notebook_classes()
    c = Config()
    c.TagRemovePreprocessor.remove_cell_tags = ("remove_cell",)
    c.TagRemovePreprocessor.remove_input_tags = ("remove_input",)
    c.TagRemovePreprocessor.remove_all_outputs_tags = ("remove_output",)
    c.TagRemovePreprocessor.enabled = True
    c.HTMLExporter.exclude_input_prompt = True
    c.HTMLExporter.exclude_output_prompt = True
    exporter = HTMLExporter(config=c, template_name="ftrecipes", extra_template_basedirs=[str(TEMPLATES)])
    exporter.register_preprocessor(TagRemovePreprocessor(config=c), enabled=True)
    if out_dir.exists(): shutil.rmtree(out_dir)
    out_dir.mkdir(parents=True)
    written = []
    for name, nb in nbs.items():
        p = pages[name]
        nb = prepare(nb, pages, doc_url, classes)
        nb.metadata["title"] = f"{p['title']} – {cfg.title}" if name != "index.ipynb" else cfg.title
        site = dict(title=cfg.title, page_title=p["title"], description=inline_code(p["description"]),
                    plain_description=p["description"].replace("`", ""),
                    sidebar=sidebar_html(entries, pages, name), repo_url=repo_url, page_nav=page_nav(entries, pages, name),
                    issues_url=f"{repo_url}/issues" if repo_url else "",
                    source_url=f"{repo_url}/blob/{cfg.get('branch', 'main')}/{NBS.name}/{name}" if repo_url else "")
        body, _ = exporter.from_notebook_node(nb, resources=dict(site=site))
        body = wrap_tables(callouts(pandoc_anchors(body)))
        body = body.replace('<a class="anchor-link"', '<a data-pagefind-ignore class="anchor-link"')  # no ¶ in results
        body = body.replace("<!--TOC-->", toc_html(body)).replace("<!--TOC-INLINE-->", toc_html(body, "inline"))
        (out_dir/p["page"]).write_text(body, encoding="utf-8")
        written.append(out_dir/p["page"])
    for folder in ("images",):
        if (NBS/folder).exists(): shutil.copytree(NBS/folder, out_dir/folder)
    for static in ("site.css", "site.js"): shutil.copy(TEMPLATES/"ftrecipes"/"static"/static, out_dir/static)
    search_index(out_dir)
    (out_dir/".nojekyll").touch()
    return written


if __name__ == "__main__":
    pages = build()
    print(f"{len(pages)} pages in {pages[0].parent}: open {pages[0].parent/'index.html'}")
    sys.exit(0)
