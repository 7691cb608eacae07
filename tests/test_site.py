"""`make html`: the static site opens offline in Chromium with figures, widgets and math."""

import functools
import http.server
import os
import shutil
import threading
from pathlib import Path

import pytest

from tests.test_browser import CHROMIUM, CHROMIUM_FLAGS

REPO = Path(__file__).parents[1]

pytestmark = pytest.mark.skipif(
    (CHROMIUM is None or shutil.which("npm") is None)
    and os.environ.get("COURSE_REQUIRE_BROWSER") != "1",
    reason="the site test needs Chromium and npm: `apt-get install chromium npm` (Debian)",
)


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """The site built from the stored notebooks, served on 127.0.0.1."""
    from tools.build_site import build

    out = tmp_path_factory.mktemp("site") / "site"
    pages = build(out)
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(out))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}", pages
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def page():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        page = browser.new_page(viewport={"width": 1200, "height": 900})
        page.outside_requests = []

        def local_only(route):
            if route.request.url.startswith("http://127.0.0.1:"):
                route.continue_()
            else:
                page.outside_requests.append(route.request.url)
                route.abort()

        page.route("**/*", local_only)
        yield page
        browser.close()


def test_every_notebook_has_a_page(site):
    _, pages = site
    notebooks = sorted(p.stem for p in (REPO / "notebooks").glob("*.ipynb"))
    assert [p.stem for p in pages] == notebooks


def test_index_links_every_lesson(site, page):
    url, pages = site
    page.goto(f"{url}/index.html")
    links = page.eval_on_selector_all("a", "links => links.map(a => a.getAttribute('href'))")
    assert {f"{p.stem}.html" for p in pages} <= set(links)
    assert "Course map" in page.inner_text("body")
    assert page.outside_requests == []


@pytest.mark.parametrize("lesson", ["02_masked_fill"])
def test_a_lesson_shows_figures_widgets_and_math_offline(site, page, lesson):
    url, _ = site
    page.goto(f"{url}/{lesson}.html")
    page.wait_for_selector(".widget-vbox img.widget-image", timeout=60_000)
    page.wait_for_selector(".MathJax_CHTML, mjx-container", timeout=60_000)
    figures = page.eval_on_selector_all(
        ".jp-OutputArea-output img",
        "images => images.filter(i => i.complete && i.naturalWidth > 100).length")
    assert figures >= 4
    widget_controls = page.eval_on_selector_all(
        ".widget-vbox .widget-toggle-button, .widget-vbox .widget-checkbox", "c => c.length")
    assert widget_controls >= 3, "the widget's initial state was not rendered"
    diagrams = page.eval_on_selector_all(
        ".jp-RenderedMarkdown img", "images => images.filter(i => i.naturalWidth > 100).length")
    assert diagrams >= 1
    page.screenshot(path=REPO / "test-artifacts" / f"site_{lesson}.png", full_page=False)
    assert page.outside_requests == [], page.outside_requests
