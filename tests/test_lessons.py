"""The lessons around the code: every recipe ends with exercises and links the pages that teach its topics in depth.

Fast: reads the notebooks' JSON, runs nothing. A recipe teaches the mission's topics where they happen in the run
(schedule, curves, memory, slices, saving), each with a link to the page that teaches it; these tests check what a
reader would trip over: a recipe without its `## Try next` exercises, a recipe that never points to the experiments
page or to what happens after deployment, and a relative link to a page (or a heading on it) that the site does not
have.
"""
import json
import re
from pathlib import Path

import pytest

from conftest import NBS, RECIPE_NOTEBOOKS

AFTER_DEPLOYMENT = "after_deployment.html"  # the page every recipe links for what happens once a model is in use

LINK = re.compile(r"\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")  # [text](target) and [text](target "title")
HEADING = re.compile(r"^(#{1,6})\s+(.+?)\s*#*\s*$")
LIST_ITEM = re.compile(r"^\s*(?:[-*+]|\d+[.)])\s+\S")


def markdown_cells(nb_path: Path) -> list:
    "The markdown cells of a notebook, as (index among all cells, source text)."
    cells = json.loads(nb_path.read_text(encoding="utf-8"))["cells"]
    return [(i, "".join(c["source"])) for i, c in enumerate(cells) if c["cell_type"] == "markdown"]


def code_sources(nb_path: Path) -> list:
    return ["".join(c["source"]) for c in json.loads(nb_path.read_text(encoding="utf-8"))["cells"] if c["cell_type"] == "code"]


def prose_lines(text: str) -> list:
    "The lines of a markdown text outside fenced code blocks."
    lines, fenced = [], False
    for line in text.splitlines():
        if line.lstrip().startswith(("```", "~~~")): fenced = not fenced; continue
        if not fenced: lines.append(line)
    return lines


def headings(text: str) -> list:
    "(level, title) of every heading of a markdown text."
    return [(len(m[1]), m[2]) for l in prose_lines(text) if (m := HEADING.match(l))]


def slug(title: str) -> str:
    "The anchor the site gives a heading (pandoc's identifiers, which Quarto uses)."
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", " ".join(title.split()))  # a link keeps its text
    text = re.sub(r"[`*]", "", text).lower()
    text = "".join(ch for ch in text if ch.isalnum() or ch in "_-. ").replace(" ", "-")
    return re.sub(r"^[^a-z]+", "", text) or "section"


def relative_html_links(text: str) -> list:
    "Every relative link of a markdown text to a `.html` page, as (page, fragment or '')."
    out = []
    for target in LINK.findall("\n".join(prose_lines(text))):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target, re.I) or target.startswith(("/", "#")): continue  # absolute, or on this page
        page, _, fragment = target.partition("#")
        if page.endswith(".html"): out.append((page, fragment))
    return out


def page_notebook(page: str, nbs: Path = NBS):
    "The notebook that renders as `page` (its name without the number prefix), or None."
    stem = page[:-len(".html")]
    hits = [p for p in sorted(nbs.glob("*.ipynb")) if re.sub(r"^\d+_", "", p.stem) == stem]
    return hits[0] if hits else None


def anchors(nb_path: Path) -> set:
    "The anchors of a page: its headings' identifiers, and the documented functions and classes (nbdev's show_doc)."
    found = {slug(t) for _, text in markdown_cells(nb_path) for _, t in headings(text)}
    for src in code_sources(nb_path):
        found |= {n.lower() for n in re.findall(r"^(?:async\s+)?(?:def|class)\s+([A-Za-z_]\w*)", src, re.M)}
    return found


def link_problems(source_name: str, text: str, nbs: Path = NBS) -> list:
    "What is wrong with the relative .html links of one markdown text: a missing page, or a missing heading on it."
    problems = []
    for page, fragment in relative_html_links(text):
        target = page_notebook(page, nbs)
        if target is None:
            problems.append(f"{source_name}: link to {page}: no notebook in nbs/ renders as that page"); continue
        if fragment and fragment not in anchors(target):
            problems.append(f"{source_name}: link to {page}#{fragment}: no such heading in {target.name}")
    return problems


def is_try_next(m) -> bool:
    "Is this heading match the `## Try next` heading?"
    return bool(m) and len(m[1]) == 2 and m[2].strip() == "Try next"


def try_next_problems(nb_path: Path) -> list:
    "A recipe ends with a `## Try next` section of at least two list items, and no code after it."
    cells = json.loads(nb_path.read_text(encoding="utf-8"))["cells"]
    where = [i for i, c in enumerate(cells) if c["cell_type"] == "markdown"
             and any(is_try_next(HEADING.match(l)) for l in prose_lines("".join(c["source"])))]
    if not where: return [f"{nb_path.name}: no '## Try next' heading"]
    start, problems, items, counting = where[-1], [], 0, True
    for i, c in enumerate(cells[start:], start):
        if c["cell_type"] == "code":
            problems.append(f"{nb_path.name}: a code cell (cell {i}) after '## Try next': the recipe should end with it")
            break
        lines = prose_lines("".join(c["source"]))
        if i == start: lines = lines[next(k for k, l in enumerate(lines) if is_try_next(HEADING.match(l))) + 1:]
        for line in lines:
            m = HEADING.match(line)
            if m and len(m[1]) <= 2:
                if counting: problems.append(f"{nb_path.name}: a section ({m[2]!r}) after '## Try next': the recipe should end with it")
                counting = False
            items += counting and bool(LIST_ITEM.match(line))
    if items < 2: problems.append(f"{nb_path.name}: '## Try next' has {items} list item(s); give two or three exercises")
    return problems


def all_notebooks() -> list:
    return sorted(NBS.glob("*.ipynb"))


# ---- the recipes --------------------------------------------------------------------------------------------------

def test_the_recipes_are_found():
    assert len(RECIPE_NOTEBOOKS) >= 7, RECIPE_NOTEBOOKS
    for nb in RECIPE_NOTEBOOKS: assert (NBS/nb).is_file(), nb


@pytest.mark.parametrize("nb", RECIPE_NOTEBOOKS)
def test_recipe_ends_with_try_next(nb):
    "Two or three concrete exercises close every recipe, under a `## Try next` heading."
    assert not try_next_problems(NBS/nb), try_next_problems(NBS/nb)


@pytest.mark.parametrize("nb", RECIPE_NOTEBOOKS)
def test_recipe_links_the_experiments_and_after_deployment_pages(nb):
    "Each recipe points to where search, seeds and learning curves are taught, and to what happens after deployment."
    pages = {page for _, text in markdown_cells(NBS/nb) for page, _ in relative_html_links(text)}
    for page in ("experiments.html", AFTER_DEPLOYMENT):
        assert page in pages, f"{nb}: no link to {page} in its markdown (links found: {sorted(pages)})"


# ---- every notebook's links ---------------------------------------------------------------------------------------

def test_relative_html_links_point_to_notebooks():
    "Every relative `*.html` link in any notebook's markdown names a page some notebook renders, and a heading on it."
    problems = [p for nb in all_notebooks() for _, text in markdown_cells(nb) for p in link_problems(nb.name, text)]
    assert not problems, "\n".join(problems)


# ---- the checks themselves can fail -------------------------------------------------------------------------------

def test_the_checks_catch_broken_lessons(tmp_path):
    "A missing page, a missing heading, a short or misplaced Try next: each is reported."
    def write(name, cells):
        (tmp_path/name).write_text(json.dumps({"cells": [dict(cell_type=t, source=s, metadata={}, id=f"{i:08x}")
                                                          for i, (t, s) in enumerate(cells)]}))
        return tmp_path/name
    write("03_training.ipynb", [("markdown", "# Training\n## Early stopping\ntext"), ("code", "def plot_loss_curves(h): pass")])
    good = "See [stopping](training.html#early-stopping), [curves](training.html#plot_loss_curves) and [x](https://a.b/c.html)."
    assert link_problems("nb", good, tmp_path) == []
    assert link_problems("nb", "[gone](experiments.html)", tmp_path) == \
        ["nb: link to experiments.html: no notebook in nbs/ renders as that page"]
    assert link_problems("nb", "[x](training.html#early-stoping)", tmp_path) == \
        ["nb: link to training.html#early-stoping: no such heading in 03_training.ipynb"]
    assert slug("Slices: where the model is worse") == "slices-where-the-model-is-worse"
    assert slug("The learning-rate schedule, before training") == "the-learning-rate-schedule-before-training"
    assert try_next_problems(write("a.ipynb", [("code", "x"), ("markdown", "## Try next\n\n- one\n- two\n")])) == []
    assert try_next_problems(write("b.ipynb", [("markdown", "## Try next\n\n- one\n"), ("markdown", "- two")])) == []
    short = try_next_problems(write("c.ipynb", [("markdown", "## Try next\n\n- one\n\n## More\n- two")]))
    assert "a section ('More')" in short[0] and "1 list item" in short[1], short
    assert "a code cell" in try_next_problems(write("d.ipynb", [("markdown", "## Try next\n- one\n- two"), ("code", "x")]))[0]
    assert try_next_problems(write("e.ipynb", [("markdown", "## What to try next\n- one\n- two")])) == ["e.ipynb: no '## Try next' heading"]
