"""`make html`: the static site opens offline in Chromium with figures, widgets and math."""

import contextlib
import functools
import http.server
import os
import shutil
import threading
from pathlib import Path

import pytest

from tests.test_browser import CHROMIUM, CHROMIUM_FLAGS, SCREENSHOTS

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
    page.wait_for_selector(".static-explorer img.static-explorer-figure", timeout=60_000)
    page.wait_for_selector(".MathJax_CHTML, mjx-container", timeout=60_000)
    figures = page.eval_on_selector_all(
        ".jp-OutputArea-output img",
        "images => images.filter(i => i.complete && i.naturalWidth > 100).length")
    assert figures >= 4
    widget_controls = page.eval_on_selector_all(
        ".static-explorer .static-toggle, .static-explorer input", "c => c.length")
    assert widget_controls >= 3, "the explorer's controls were not rendered"
    diagrams = page.eval_on_selector_all(
        ".jp-RenderedMarkdown img", "images => images.filter(i => i.naturalWidth > 100).length")
    assert diagrams >= 1
    page.screenshot(path=REPO / "test-artifacts" / f"site_{lesson}.png", full_page=False)
    assert page.outside_requests == [], page.outside_requests


EXPLORER_LESSONS = sorted(
    path.stem for path in (REPO / "notebooks").glob("*.ipynb")
    if ".widget()" in path.read_text())
LESSONS = sorted(path.stem for path in (REPO / "notebooks").glob("*.ipynb"))


@contextlib.contextmanager
def failures(page):
    """The page's console errors and failed (>= 400) responses while the block runs."""
    found = []

    def console(message):
        if message.type == "error":
            found.append(message.text)

    def response(answer):
        if answer.status >= 400:
            found.append(f"{answer.status} {answer.url}")

    page.on("console", console)
    page.on("response", response)
    try:
        yield found
    finally:
        page.remove_listener("console", console)
        page.remove_listener("response", response)


def _settled_figure(page, root) -> str:
    """The explorer's figure once loaded and drawn: its src."""
    page.wait_for_function(
        "r => { const i = r.querySelector('img'); return i.complete && i.naturalWidth > 100; }",
        arg=root, timeout=30_000)
    return root.query_selector("img").get_attribute("src")


def _change(page, control) -> None:
    """Change one static control as a reader would: a toggle button, the checkbox, or the
    slider to its far end (its start if it is at the end)."""
    kind = control.get_attribute("type")
    if kind == "checkbox":
        control.click()
    elif kind == "range":
        control.focus()
        page.keyboard.press("Home" if control.evaluate("c => c.value === c.max") else "End")
    else:
        control.query_selector(".static-toggle:not(.active)").click()


@pytest.mark.parametrize("lesson", EXPLORER_LESSONS)
def test_every_static_explorer_control_changes_its_figure_offline(site, page, lesson):
    """A reader without a kernel changes each control in turn, as in JupyterLab: each change
    shows a different figure (a different picture, not only another file name)."""
    url, pages = site
    out = pages[0].parent
    with failures(page) as problems:
        page.goto(f"{url}/{lesson}.html")
        root = page.wait_for_selector(".static-explorer", timeout=60_000)
        root.scroll_into_view_if_needed()
        controls = root.query_selector_all("[data-control]")
        assert controls, "a static explorer without controls"
        for number, control in enumerate(controls):
            before = _settled_figure(page, root)
            _change(page, control)
            after = _settled_figure(page, root)
            assert after != before, f"{lesson}: control {number} did not change the figure"
            assert (out / after).read_bytes() != (out / before).read_bytes(), (
                f"{lesson}: control {number} shows the same picture")
        page.screenshot(path=REPO / "test-artifacts" / f"site_explorer_{lesson}.png")
        if SCREENSHOTS and lesson == "04_six_transformer_masks":  # for the README
            root.screenshot(path=Path(SCREENSHOTS) / "site_explorer.png")
    assert problems == [], problems
    assert page.outside_requests == [], page.outside_requests


@pytest.mark.parametrize("lesson", LESSONS)
def test_every_page_has_the_course_nav_no_error_and_no_blank_figure(site, page, lesson):
    url, _ = site
    with failures(page) as problems:
        page.goto(f"{url}/{lesson}.html")
        page.wait_for_load_state("load")
        current = page.eval_on_selector_all(
            '.course-nav [aria-current="page"]', "links => links.map(a => a.getAttribute('href'))")
        assert current == [f"{lesson}.html"]
        at = LESSONS.index(lesson)
        for rel, neighbour in (("prev", at - 1), ("next", at + 1)):
            links = page.eval_on_selector_all(f'.course-nav a[rel="{rel}"]',
                                              "links => links.map(a => a.getAttribute('href'))")
            expected = [f"{LESSONS[neighbour]}.html"] if 0 <= neighbour < len(LESSONS) else []
            assert links == expected, rel
        page.wait_for_function("() => [...document.images].every(i => i.complete)",
                               timeout=30_000)
        blank = page.eval_on_selector_all(
            ".jp-OutputArea-output img, .static-explorer img",
            "images => images.filter(i => i.naturalWidth < 50).map(i => i.src.slice(0, 80))")
        assert blank == [], blank
    assert problems == [], problems
    assert page.outside_requests == [], page.outside_requests


def test_a_reader_follows_next_and_finds_a_lesson_by_searching(site, page):
    url, _ = site
    page.goto(f"{url}/00_start_here.html")
    page.click('.course-nav a[rel="next"]')
    page.wait_for_url(f"{url}/01_padding_motivation.html")
    page.fill("#course-search", "packing document mask")
    page.wait_for_selector("#course-results li a", timeout=10_000)
    hrefs = page.eval_on_selector_all("#course-results li a",
                                      "links => links.map(a => a.getAttribute('href'))")
    assert any(href.startswith("10_packing.html#") for href in hrefs), hrefs
    page.click('#course-results a[href^="10_packing.html#"]')
    page.wait_for_url(f"{url}/10_packing.html#*")
    anchor = page.evaluate("() => location.hash.slice(1)")  # nbconvert writes ids URL-encoded
    assert page.evaluate("id => document.getElementById(id) !== null", anchor)
    page.fill("#course-search", "zzzz qqqq")
    assert "no section mentions" in page.inner_text("#course-results")
    assert page.outside_requests == [], page.outside_requests




@pytest.mark.parametrize("lesson", LESSONS)
def test_every_slide_fits_a_1280x720_projector(site, page, lesson):
    """The lesson as reveal.js slides, served from the site: each slide's content fits 1280 x
    720 (a slide too tall is scaled down, never below 55%), every figure and explorer is
    inside the slide, and nothing is missing or fails."""
    url, _ = site
    page.set_viewport_size({"width": 1280, "height": 720})
    try:
        with failures(page) as problems:
            page.goto(f"{url}/{lesson}.slides.html")
            page.wait_for_function("() => window.Reveal && Reveal.isReady()", timeout=60_000)
            page.wait_for_function("() => [...document.images].every(i => i.complete)",
                                   timeout=30_000)
            page.evaluate("() => Reveal.configure({transition: 'none', "
                          "backgroundTransition: 'none'})")
            slides = page.evaluate("""() => Reveal.getSlides().map(slide => {
                const at = Reveal.getIndices(slide);
                Reveal.slide(at.h, at.v);
                const bottom = Math.max(0, ...[...slide.querySelectorAll(
                    '.jp-OutputArea-output img, .static-explorer')].map(
                    e => e.getBoundingClientRect().bottom));
                return {at: [at.h, at.v], scale: Number(slide.dataset.fitScale), bottom,
                        text: slide.textContent.trim().slice(0, 40)};
            })""")
            assert len(slides) >= 10
            small = [s for s in slides if s["scale"] < 0.55]
            assert small == [], small
            outside = [s for s in slides if s["bottom"] > 721]
            assert outside == [], outside
            if page.query_selector(".static-explorer"):
                page.evaluate("""() => { const at = Reveal.getIndices(
                    document.querySelector('.static-explorer').closest('section'));
                    Reveal.slide(at.h, at.v); }""")
                root = page.query_selector(".static-explorer")
                before = _settled_figure(page, root)
                _change(page, root.query_selector("[data-control]"))
                assert _settled_figure(page, root) != before, "the explorer on its slide is inert"
                if SCREENSHOTS and lesson == "04_six_transformer_masks":  # for the README
                    page.screenshot(path=Path(SCREENSHOTS) / "slides.png")
    finally:
        page.set_viewport_size({"width": 1200, "height": 900})
    assert problems == [], problems
    assert page.outside_requests == [], page.outside_requests
