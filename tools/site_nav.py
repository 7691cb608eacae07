"""The static site's navigation and search, without a server or the network.

* :func:`nav_html`: on every page, a bar with the course map (index), the previous and the
  next lesson, a list of every lesson with the current one marked, and a search box.
* :func:`search_index`: one entry per section (a heading of a lesson's markdown and its text
  up to the next heading), read from the rendered pages, so every link's anchor exists.
  It is written as a script (``static/search-index.js``) rather than JSON: a page opened
  from disk (``file://``) may load a script but not fetch a file.
"""

from __future__ import annotations

import html
import json
import re

from bs4 import BeautifulSoup

SCRIPT = "search.js"
INDEX = "search-index.js"

STYLE = """<style>
.course-nav { position: sticky; top: 0; z-index: 100; background: #f7f7f7;
  border-bottom: 1px solid #ccc; padding: .4rem 1rem; font: 14px/1.4 sans-serif;
  display: flex; flex-wrap: wrap; gap: .3rem 1.2rem; align-items: center }
.course-nav a { color: #1a4f8b; text-decoration: none }
.course-nav a:hover { text-decoration: underline }
.course-nav details { position: relative }
.course-nav details ol { position: absolute; background: #fff; border: 1px solid #ccc;
  margin: .3rem 0 0; padding: .4rem 1.6rem; min-width: 18rem; box-shadow: 0 2px 6px #0003 }
.course-nav [aria-current="page"] { font-weight: bold; color: #000 }
.course-search { position: relative; margin-left: auto }
.course-search input { width: 16rem; padding: .2rem .4rem; font: inherit }
.course-search ol { position: absolute; right: 0; width: 28rem; max-height: 70vh;
  overflow: auto; background: #fff; border: 1px solid #ccc; margin: .2rem 0 0;
  padding: .3rem .3rem .3rem 1.8rem; box-shadow: 0 2px 6px #0003 }
.course-search ol:empty { display: none }
.course-search li { margin: .25rem 0 }
.course-search small { display: block; color: #555 }
</style>"""

SCRIPT_SOURCE = """// Offline search over every lesson's sections (window.COURSE_SEARCH).
(function () {
  var box = document.getElementById("course-search");
  var list = document.getElementById("course-results");
  if (!box || !window.COURSE_SEARCH) { return; }
  function escape(text) {
    return text.replace(/[&<>"]/g, function (c) {
      return {"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;"}[c];
    });
  }
  box.addEventListener("input", function () {
    var words = box.value.toLowerCase().split(/\\s+/).filter(function (w) { return w.length > 1; });
    list.innerHTML = "";
    if (!words.length) { return; }
    var hits = window.COURSE_SEARCH.filter(function (entry) {
      var text = (entry.title + " " + entry.text).toLowerCase();
      return words.every(function (w) { return text.indexOf(w) >= 0; });
    }).slice(0, 12);
    list.innerHTML = hits.length ? hits.map(function (entry) {
      var at = entry.text.toLowerCase().indexOf(words[0]);
      var snippet = entry.text.slice(Math.max(0, at - 40), at + 80);
      var name = entry.title === entry.lesson ? entry.lesson : entry.lesson + ": " + entry.title;
      return '<li><a href="' + entry.href + '">' + escape(name) + "</a><small>…" +
        escape(snippet) + "…</small></li>";
    }).join("") : "<li>no section mentions all of these words</li>";
  });
})();
"""


def lesson_title(page_html: str, fallback: str) -> str:
    """The text of a rendered lesson's first heading (its title)."""
    heading = BeautifulSoup(page_html, "html.parser").find("h1")
    return heading.get_text(" ", strip=True).rstrip("¶").strip() if heading else fallback


def nav_html(lessons: list[tuple[str, str]], current: str | None) -> str:
    """The navigation bar: ``lessons`` is [(page stem, title)], ``current`` this page's stem
    (None: the index)."""
    stems = [stem for stem, _ in lessons]
    at = stems.index(current) if current in stems else None
    links = ['<a href="index.html">Course map</a>']
    if at is not None and at > 0:
        links.append(f'<a href="{stems[at - 1]}.html" rel="prev">← previous: '
                     f"{html.escape(lessons[at - 1][1])}</a>")
    if at is not None and at + 1 < len(stems):
        links.append(f'<a href="{stems[at + 1]}.html" rel="next">next: '
                     f"{html.escape(lessons[at + 1][1])} →</a>")
    marked = ' aria-current="page"'
    if at is not None:
        links.append(f'<a href="{current}.slides.html" class="slides-link">Present as slides</a>')
    items = "".join(f'<li><a href="{stem}.html"{marked if stem == current else ""}>'
                    f"{html.escape(title)}</a></li>" for stem, title in lessons)
    return (f'{STYLE}<nav class="course-nav" aria-label="course">{"".join(links)}'
            f"<details><summary>All lessons</summary><ol start=\"0\">{items}</ol></details>"
            '<div class="course-search"><input type="search" id="course-search" '
            'placeholder="Search the course" aria-label="Search the course">'
            '<ol id="course-results"></ol></div></nav>')


def sections(stem: str, title: str, page_html: str) -> list[dict]:
    """One search entry per heading of the page's markdown: its anchor and its text."""
    soup = BeautifulSoup(page_html, "html.parser")
    entries, current = [], None
    for cell in soup.select(".jp-MarkdownCell .jp-RenderedMarkdown"):
        for element in cell.find_all(["h1", "h2", "h3", "p", "li", "td"]):
            if element.name in ("h1", "h2", "h3") and element.get("id"):
                heading = element.get_text(" ", strip=True).rstrip("¶").strip()
                current = {"lesson": title, "title": heading, "text": "",
                           "href": f"{stem}.html#{element['id']}"}
                entries.append(current)
            elif current is not None and element.find_parent(["li", "td"]) is None:
                current["text"] += " " + re.sub(r"\s+", " ", element.get_text(" ", strip=True))
    for entry in entries:
        entry["text"] = entry["text"].strip()
    return entries


def index_script(entries: list[dict]) -> str:
    return "window.COURSE_SEARCH = " + json.dumps(entries, ensure_ascii=False) + ";\n"


def add_nav(page_html: str, nav: str) -> str:
    """``page_html`` with ``nav`` first in its body and the search scripts at its end."""
    scripts = f'<script src="static/{INDEX}"></script><script src="static/{SCRIPT}"></script>'
    page_html = re.sub(r"(<body[^>]*>)", lambda m: m.group(1) + nav, page_html, count=1)
    return page_html.replace("</body>", scripts + "</body>", 1)
