"""coursekit.grading.sanitize on its own: honest markup unchanged, student markup inert.

These run in milliseconds; tests/test_formgrader.py shows the same in a real browser, in the
feedback page and in the formgrader.
"""
import re

import nbformat
import pytest

from coursekit.course import RELEASE_NOTEBOOK
from coursekit.examples.samples import solution_cells
from coursekit.grading.sanitize import InertStudentHTML, inert_html, inert_markdown, inert_svg

HONEST_MARKDOWN = [
    "## Heading\n\nSome **bold**, *emphasis*, a [link](https://example.org) and a list:\n\n"
    "- one\n- two\n\n> a quote > with a sign\n",
    "Maths stays: $\\sigma^2 = 1 - 1/\\pi$ and $$\\mathrm{Var}[x] = 2$$",
    "```python\nif variance < 1:\n    print('<b>')\n```\n",
    "An image ![figure](attachment:figure.png) and ![inline](data:image/png;base64,AAAA)",
]


@pytest.mark.parametrize("text", HONEST_MARKDOWN)
def test_markdown_without_html_is_unchanged(text):
    assert inert_markdown(text) == text


def test_the_reference_written_answer_is_unchanged():
    answer = solution_cells()["written_after_relu"]
    assert inert_markdown(answer) == answer


def test_a_less_than_sign_still_reads_as_one():
    assert inert_markdown("a < b") == "a &lt; b"
    assert inert_markdown("$a < b$") == "$a \\lt  b$"
    assert inert_markdown("`a < b`") == "<code>a &#60; b</code>"


# Each of these is raw HTML in some renderer; after sanitizing, no "<" may open a tag.
HOSTILE_MARKDOWN = [
    "<script>document.title='x'</script>",
    "<img src=x onerror=alert(1)>",
    "text\n<svg onload=alert(1)>",
    "\\`<img src=x onerror=alert(1)>\\`",
    "`a\n<img src=x onerror=alert(1)>`",
    "> quote\n```\n<img src=x onerror=alert(1)>\n```",
    "\n```\ncode\n   ```\n<img src=x onerror=alert(1)>\n```\n",
    "<!-- a comment --><iframe src=x></iframe>",
    "$x$<img src=x onerror=alert(1)>$y$",
    "\\(<img src=x onerror=alert(1)>",
]


@pytest.mark.parametrize("text", HOSTILE_MARKDOWN)
def test_raw_html_in_markdown_cannot_open_a_tag(text):
    # The only tags left are the sanitizer's own <code> elements.
    cleaned = inert_markdown(text).replace("<code>", "").replace("</code>", "")
    assert re.search(r"<[A-Za-z!/?]", cleaned) is None, cleaned


@pytest.mark.parametrize("text", [
    "[x](javascript:alert(1))", "[x](jav&#9;ascript:alert(1))", "[x](java\\script:alert(1))",
    "[a[b[c]]](JavaScript:x)", "[x](<javascript:alert(1)>)", "[r]: javascript:alert(1)\n\n[x][r]",
    "[x](vbscript:x)", "[x](data:text/html;base64,PHNjcmlwdD4=)"])
def test_markdown_links_cannot_run_script(text):
    assert "script:" not in inert_markdown(text).lower().replace("&#9;", "")
    assert "data:text" not in inert_markdown(text)


def test_markdown_images_load_only_from_the_notebook():
    cleaned = inert_markdown("![a](http://127.0.0.1:9/x) ![b](//host/x) ![c](h&#116;tp://h/x)")
    assert "127.0.0.1" not in cleaned and "host" not in cleaned and "h/x" not in cleaned


def test_html_outputs_keep_tables_and_data_images_and_lose_everything_active():
    cleaned = inert_html(
        '<table class="dataframe"><tr><td colspan="2">1</td></tr></table>'
        '<img src="data:image/png;base64,AAAA" width="10"><style>td{}</style>'
        '<script>alert(1)</script><img src="http://127.0.0.1:9/x" onerror="alert(1)">'
        '<a href="javascript:alert(1)">j</a><iframe src="x"></iframe><svg onload="x"></svg>')
    assert '<td colspan="2">1</td>' in cleaned
    assert '<img src="data:image/png;base64,AAAA" width="10">' in cleaned
    for active in ("script", "alert", "127.0.0.1", "javascript", "iframe", "svg", "style",
                   "td{}"):
        assert active not in cleaned


def test_svg_keeps_the_drawing_and_loses_scripts_and_external_references():
    cleaned = inert_svg(
        '<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink"'
        ' onload="alert(1)"><script>alert(1)</script><rect width="3" fill="url(#g)"/>'
        '<image xlink:href="http://127.0.0.1:9/x"/><foreignObject><div/></foreignObject>'
        '<use xlink:href="#g"/></svg>')
    assert 'width="3"' in cleaned and 'fill="url(#g)"' in cleaned and '"#g"' in cleaned
    for active in ("alert", "127.0.0.1", "foreignObject", "script"):
        assert active not in cleaned
    assert inert_svg("<html><script>x</script></html>") is None


def _notebook(*cells):
    notebook = nbformat.v4.new_notebook()
    notebook.cells = list(cells)
    return notebook


def test_the_preprocessor_drops_active_outputs_and_unquoted_metadata():
    cell = nbformat.v4.new_code_cell("display(...)")
    cell.outputs = [
        nbformat.v4.new_output("display_data", data={
            "application/javascript": "alert(1)", "text/plain": "<IPython.Javascript>"}),
        nbformat.v4.new_output("display_data", data={"image/png": "AAAA"}, metadata={
            "image/png": {"width": "1 onload=alert(1)", "height": 20, "alt": ALT_ATTACK},
            "needs_background": "light"}),
        nbformat.v4.new_output("execute_result", data={"text/markdown": "<b onclick=x>b</b>"},
                               execution_count=1),
    ]
    notebook, _ = InertStudentHTML().preprocess(_notebook(cell), {})
    outputs = notebook.cells[0].outputs
    assert outputs[0].data == {"text/plain": "<IPython.Javascript>"}
    assert outputs[1].metadata == {"image/png": {"height": 20, "alt": ALT_ATTACK}}
    assert outputs[2].data["text/markdown"] == "&lt;b onclick=x>b&lt;/b>"
    # Alt text stays, for screen readers: the feedback page writes it quoted and escaped.
    from nbconvert import HTMLExporter

    from bs4 import BeautifulSoup

    page, _ = HTMLExporter(template_name="classic").from_notebook_node(notebook)
    soup = BeautifulSoup(page, features="html.parser")
    [image] = [img for img in soup.find_all("img") if img.get("src", "").endswith("AAAA")]
    assert image["alt"] == ALT_ATTACK and set(image.attrs) <= {"src", "alt", "height", "class"}
    assert not [tag for tag in soup.find_all("script") if "alert" in tag.text]


ALT_ATTACK = '"><script>alert(1)</script><img src=x onload=alert(2)>'


def test_the_releases_own_markdown_is_left_as_the_instructor_wrote_it(tmp_path):
    release = nbformat.read(RELEASE_NOTEBOOK, as_version=4)
    badge = next(cell for cell in release.cells if "<a href" in cell.source)
    folder = tmp_path / "release" / "bn"
    folder.mkdir(parents=True)
    nbformat.write(release, folder / "nb.ipynb")
    student = nbformat.v4.new_markdown_cell(badge.source + " ")
    notebook, _ = InertStudentHTML(config=_root(tmp_path)).preprocess(
        _notebook(nbformat.v4.new_markdown_cell(badge.source), student),
        {"nbgrader": {"assignment": "bn", "notebook": "nb", "student": "s"}})
    assert notebook.cells[0].source == badge.source
    assert "<a href" not in notebook.cells[1].source


def _root(path):
    from traitlets.config import Config

    config = Config()
    config.CourseDirectory.root = str(path)
    return config


def test_the_feedback_results_show_messages_as_text():
    """A check's message can quote an error the student's code raised: the results atop
    the feedback page (coursekit/grading/templates/feedback_results) show it as text."""
    import os

    import nbgrader
    from bs4 import BeautifulSoup
    from nbconvert import HTMLExporter

    from coursekit.grading.feedback import ResultLine, Results, template_config

    config = template_config([os.path.join(  # what nbgrader's generate_feedback adds
        os.path.dirname(nbgrader.__file__), "server_extensions", "formgrader", "static",
        "node_modules", "bootstrap", "dist", "css")])
    hostile = ALT_ATTACK
    results = Results("1 of 2 points " + hostile, [
        ResultLine("test_a" + hostile, "a" + hostile, "✗", "0 of 1 point", hostile, "failed"),
        ResultLine("written", "written answer", "✎", "1 of 1 point", "Graded.", "graded",
                   "A *fine* answer.")], {})
    resources = {"nbgrader": {"notebook": "nb", "score": 1, "max_score": 2,
                              "late_penalty": 0}, "results": results}
    page, _ = HTMLExporter(config=config).from_notebook_node(_notebook(), resources=resources)
    soup = BeautifulSoup(page, features="html.parser")
    # The gradebook's total, for a program to read (the heading words it for a person).
    assert [soup.select_one("#results")[key] for key in ("data-score", "data-max-score")] \
        == ["1.0", "2.0"]
    rows = soup.select("#results tr.result")
    assert [cell.get_text().strip() for cell in rows[0].find_all("td")] == [
        "✗", "a" + hostile, "0 of 1 point", hostile]
    assert rows[1].select_one(".comment em").get_text() == "fine"
    assert not [tag for tag in soup.find_all("script") if "alert" in tag.text]
    assert not soup.select("#results img")
