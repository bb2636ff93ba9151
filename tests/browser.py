"""Headless Chromium for the browser tests (the docs site, JupyterLab), driven by Playwright.

Debian's chromium is used, not a browser Playwright downloads: `.ci/run` installs it with apt. Without it the tests
skip, saying how to install it; under CI (`CI` set) a missing browser fails the run instead of skipping it."""
import os
import shutil
import socket
from contextlib import contextmanager
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT/"test-artifacts"  # screenshots the browser tests save for a person to look at (git-ignored)

# The machine has no general network: without these flags Chromium keeps trying to reach its update, sync and
# metrics services at start-up, and each refused connection is noise in the console we check.
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage"]


def chromium_path() -> str:
    "Debian's Chromium, or skip (fail under CI) with how to get it."
    exe = os.environ.get("FTRECIPES_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    if exe: return exe
    msg = "no Chromium on PATH: the browser tests need Debian's chromium (sudo apt-get install chromium)"
    if os.environ.get("CI"): pytest.fail(msg)
    pytest.skip(msg)


@contextmanager
def browser():
    "A headless Chromium, closed at the end."
    exe = chromium_path()
    try: from playwright.sync_api import sync_playwright
    except ImportError: pytest.fail("playwright is not installed: pip install -e '.[dev]'")
    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=exe, args=CHROMIUM_ARGS)
        try: yield b
        finally: b.close()


def free_port() -> int:
    "A free TCP port on loopback."
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def screenshot(page, name: str) -> Path:
    "Save a full-page screenshot under test-artifacts/ and return its path."
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS/name
    page.screenshot(path=str(path), full_page=True)
    return path
