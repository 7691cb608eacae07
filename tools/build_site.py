"""Render the stored notebooks to a static, offline HTML site (`make html`).

Nothing is executed: each lesson page is its stored outputs. The lesson's explorer is
replaced by a static one that responds without a kernel (tools/static_explorers.py: every
state drawn by the explorer's own function, the same controls as plain HTML); a widget that
is not an explorer would show its stored state. The widget renderer, require.js and MathJax
are served from the site itself (pinned in tools/site/package.json and installed with
`npm ci`), never from a CDN; images are embedded. The index page is the README's course
map, linked to the lessons; the lessons' links to each other
(``01_padding_motivation.ipynb#anchor``) point to their pages.

Usage: python -m tools.build_site [OUT_DIR]   (default: site/)
"""

import re
import shutil
import subprocess
import sys
from pathlib import Path

import mistune
import nbformat
from nbconvert import HTMLExporter, SlidesExporter

from course_lib.widgets.core import STATIC_FIGURE, WIDGET_VIEW
from tools import site_nav, static_explorers
from tools import slides as slide_maker

REPO = Path(__file__).parents[1]
ASSETS = REPO / "tools" / "site"
MODULES = ASSETS / "node_modules"
STATIC = "static"
# Only what the pages load: the TeX -> CommonHTML configuration and its parts.
MATHJAX_PARTS = ["MathJax.js", "config/TeX-AMS_CHTML-full.js", "config/Safe.js", "extensions",
                 "jax/element", "jax/input/TeX", "jax/output/CommonHTML", "localization",
                 "fonts/HTML-CSS/TeX"]
# href="NN_name.ipynb" or "NN_name.ipynb#anchor": relative, no scheme, no folder.
NOTEBOOK_LINK = re.compile(r'href="([\w.-]+)\.ipynb(#[^"]*)?"')


def install_assets() -> None:
    """`npm ci` once; later builds reuse node_modules while package-lock.json is unchanged."""
    stamp = MODULES / ".course-lock"
    lock = (ASSETS / "package-lock.json").read_text()
    if stamp.exists() and stamp.read_text() == lock:
        return
    if shutil.which("npm") is None:
        sys.exit("make html needs npm (Node.js) to fetch the pinned JavaScript once: "
                 "install it (Debian: apt-get install npm) and run `make html` again")
    subprocess.run(["npm", "ci", "--ignore-scripts", "--no-audit", "--no-fund"],
                   cwd=ASSETS, check=True)
    stamp.write_text(lock)


def copy_assets(out: Path) -> None:
    static = out / STATIC
    shutil.copy2(MODULES / "requirejs" / "require.js", static / "require.js")
    manager = MODULES / "@jupyter-widgets" / "html-manager" / "dist"
    (static / "html-manager").mkdir()
    fonts = {".woff", ".woff2", ".ttf", ".eot", ".svg"}
    for path in manager.iterdir():
        if path.name == "embed-amd.js" or path.suffix in fonts:
            shutil.copy2(path, static / "html-manager" / path.name)
    reveal = MODULES / "reveal.js"
    shutil.copytree(reveal / "dist", static / "reveal.js" / "dist",
                    ignore=shutil.ignore_patterns("*.map", "*.esm.js"))
    shutil.copytree(reveal / "plugin" / "notes", static / "reveal.js" / "plugin" / "notes")
    shutil.copy2(MODULES / "jquery" / "dist" / "jquery.min.js", static / "jquery.min.js")
    (static / NO_MERMAID).write_text("export default { initialize() {} };\n")
    for part in MATHJAX_PARTS:
        source, target = MODULES / "mathjax" / part, static / "mathjax" / part
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.is_dir():
            shutil.copytree(source, target)
        else:
            shutil.copy2(source, target)


def exporter(kind: type[HTMLExporter] = HTMLExporter) -> HTMLExporter:
    """A lesson page's exporter (``SlidesExporter``: its reveal.js slides, 1280 x 720), every
    script served from the site."""
    if kind is SlidesExporter:
        html = SlidesExporter(reveal_url_prefix=f"{STATIC}/reveal.js", reveal_theme="white",
                              reveal_width="1280", reveal_height="720", reveal_number="c/t",
                              embed_images=True)
        # The reveal template loads jQuery and mermaid whatever the notebook holds: served
        # from the site (jQuery from the pinned widget renderer's dependencies; no lesson
        # has a mermaid diagram, so a module that does nothing).
        html.jquery_url = f"{STATIC}/jquery.min.js"
        html.mermaid_js_url = f"{STATIC}/{NO_MERMAID}"
    else:
        html = HTMLExporter(template_name="lab", embed_images=True)
    html.require_js_url = f"{STATIC}/require.js"
    html.widget_renderer_url = f"{STATIC}/html-manager/embed-amd.js"
    html.mathjax_url = f"{STATIC}/mathjax/MathJax.js?config=TeX-AMS_CHTML-full,Safe"
    return html


NO_MERMAID = "no-mermaid.mjs"
# On a 1280 x 720 slide: smaller text and code, figures no taller than the room left; a
# slide still taller than 720 px is scaled down to fit (data-fit-scale records how much).
SLIDE_STYLE = """<style>
.reveal { font-size: 20px }
.reveal h1, .reveal h2, .reveal h3 { text-transform: none; font-weight: 600 }
.reveal h1 { font-size: 36px } .reveal h2 { font-size: 30px } .reveal h3 { font-size: 24px }
.reveal .slides { text-align: left }
.reveal .jp-InputArea, .reveal pre, .reveal code { font-size: 14px; line-height: 1.35 }
.reveal .jp-OutputArea-output img, .reveal .static-explorer-figure { max-height: 560px;
  width: auto; max-width: 100% }
.reveal .jp-InputPrompt, .reveal .jp-OutputPrompt { display: none }
.reveal .static-explorer-controls { font-size: 14px }
</style>"""
FIT_SCRIPT = """
        function fit(event) {
          var slide = event.currentSlide;
          slide.style.transform = "";
          var scale = Math.min(1, 720 / slide.scrollHeight);
          slide.style.transformOrigin = "top left";
          slide.style.transform = scale < 1 ? "scale(" + scale + ")" : "";
          slide.dataset.fitScale = scale;
        }
        Reveal.on("ready", fit);
        Reveal.on("slidechanged", fit);
        window.Reveal = Reveal;  // loaded as a require.js module: reachable from the console
        Reveal.initialize({"""


def notebook_links_to_pages(page: str) -> str:
    """``page`` with every relative link to a notebook (``href="NN_name.ipynb"``, with or
    without ``#anchor``) pointing to its page instead (``href="NN_name.html"``)."""
    if not isinstance(page, str):
        raise TypeError(f"page: expected the HTML of a page as a str, got {type(page).__name__}")
    return NOTEBOOK_LINK.sub(lambda m: f'href="{m.group(1)}.html{m.group(2) or ""}"', page)


def drop_static_figures(notebook) -> None:
    """Remove each explorer's static figure: the page shows the explorer itself, drawn from
    the widget state the notebook holds, so the static copy would only repeat it."""
    for cell in notebook.cells:
        if cell.cell_type == "code":
            cell.outputs = [output for output in cell.get("outputs", [])
                            if output.get("data", {}).get("text/plain") != STATIC_FIGURE]


def use_static_explorer(notebook, lesson: str, out: Path) -> int:
    """Replace the lesson's explorer widget by its static version, its figures drawn into
    ``out/explorers/<NN>/``; return how many states were drawn (0: no explorer)."""
    found = static_explorers.find_explorer(notebook, lesson)
    if found is None:
        return 0
    index, explorer = found
    folder = f"explorers/{lesson[:2]}"
    count = static_explorers.render(explorer, out / folder)
    notebook.cells[index].outputs = [nbformat.v4.new_output(
        "display_data", data={"text/html": static_explorers.page_snippet(explorer, folder)})]
    if not any(WIDGET_VIEW in output.get("data", {}) for cell in notebook.cells
               if cell.cell_type == "code" for output in cell.outputs):
        notebook.metadata.pop("widgets", None)  # no live widget left: no widget renderer
    return count


def prepare(path: Path, out: Path | None):
    """The stored notebook at ``path`` as it goes on the site: without the explorer's static
    figure and, with ``out`` (the site's folder), with the static explorer."""
    notebook = nbformat.read(path, as_version=4)
    if notebook.metadata.get("widgets"):
        drop_static_figures(notebook)
    if out is not None:
        use_static_explorer(notebook, path.stem, out)
    return notebook


def render_page(path: Path, html: HTMLExporter, out: Path | None = None, *,
                notebook=None) -> str:
    """The HTML page of the stored notebook at ``path``, as it goes on the site (``out``:
    the site's folder, where the static explorer's figures are drawn; None: the explorer
    keeps its stored widget state). ``notebook``: already :func:`prepare`-d."""
    notebook = notebook if notebook is not None else prepare(path, out)
    body, _ = html.from_notebook_node(
        notebook, resources={"metadata": {"name": path.stem, "path": str(path.parent)}})
    if isinstance(html, SlidesExporter):
        body = body.replace("</head>", SLIDE_STYLE + "</head>", 1)
        body = body.replace("Reveal.initialize({", FIT_SCRIPT.strip(), 1)
    # <img> tags escape embed_images: serve images/ from the site too.
    return notebook_links_to_pages(body.replace('src="../images/', 'src="images/'))


def course_map_html(notebooks: list[Path]) -> str:
    """The README's course map, with each available lesson linked to its page."""
    readme = (REPO / "README.md").read_text()
    section = re.search(r"^## Course map\n(.*?)(?=^## )", readme, re.S | re.M).group(1)
    for path in notebooks:
        section = section.replace(f"`{path.stem}`", f"[{path.stem}]({path.stem}.html)")
    return mistune.html(section)


INDEX = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Masking in Transformers</title>
<style>body {{ font-family: sans-serif; max-width: 60rem; margin: 2rem auto; line-height: 1.5 }}
table {{ border-collapse: collapse }} td, th {{ border: 1px solid #ccc; padding: .3rem .6rem;
vertical-align: top }}</style></head>
<body><h1>Masking in Transformers</h1>
<p>An interactive course on padding and attention masks, rendered from the executed
notebooks. Each lesson's explorer responds here too: every state is drawn in advance by
the same function JupyterLab runs. To change the code, run the notebooks in JupyterLab
(<code>make lab</code>).</p>
<h2>Course map</h2>
{course_map}
</body></html>
"""


def build(out: Path) -> list[Path]:
    install_assets()
    if out.exists():
        shutil.rmtree(out)
    (out / STATIC).mkdir(parents=True)
    copy_assets(out)
    static_explorers.write_script(out / STATIC)
    shutil.copytree(REPO / "images", out / "images", ignore=shutil.ignore_patterns("*.py"))
    notebooks = sorted((REPO / "notebooks").glob("*.ipynb"))
    html, slides = exporter(), exporter(SlidesExporter)
    bodies = {}
    for path in notebooks:
        notebook = prepare(path, out)
        bodies[path.stem] = render_page(path, html, notebook=notebook)
        (out / f"{path.stem}.slides.html").write_text(
            render_page(path, slides, notebook=slide_maker.for_slides(notebook)))
    lessons = [(stem, site_nav.lesson_title(body, stem)) for stem, body in bodies.items()]
    entries = []
    pages = []
    for stem, title in lessons:
        page = out / f"{stem}.html"
        page.write_text(site_nav.add_nav(bodies[stem], site_nav.nav_html(lessons, stem)))
        entries += site_nav.sections(stem, title, bodies[stem])
        pages.append(page)
    (out / STATIC / site_nav.INDEX).write_text(site_nav.index_script(entries))
    (out / STATIC / site_nav.SCRIPT).write_text(site_nav.SCRIPT_SOURCE)
    index = INDEX.format(course_map=course_map_html(notebooks))
    (out / "index.html").write_text(site_nav.add_nav(index, site_nav.nav_html(lessons, None)))
    return pages


if __name__ == "__main__":
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else REPO / "site"
    for page in build(target):
        print(page.relative_to(target.parent) if target.parent in page.parents else page)
