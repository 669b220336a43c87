"""Student HTML made inert before anyone looks at it.

A student writes the markdown cells, the written answer and every output of a graded
notebook. nbconvert renders markdown and `text/html` outputs as they are, so a `<script>`,
an `onerror=` or a `javascript:` link there runs in the student's feedback page and, worse,
in the formgrader's Manual Grading page, inside the instructor's authenticated Jupyter
session (where it can call the server's API: write files, run code). `InertStudentHTML`
runs last in autograde, so the autograded notebook on disk (what the formgrader shows) is
already inert, and again in generate_feedback, in case a notebook was graded before it
existed.

- Markdown (cells and `text/markdown` outputs): every `<` outside a fenced code block is
  written so that it shows as `<` but can never open a tag: `&lt;` in text, `\\lt` in
  maths, an escaped `<code>` element for an inline code span. Markdown, maths and code
  still render; raw HTML shows as text. Images come only from attachments, `data:` or
  relative paths (no request to another host). Markdown cells identical to one of the
  release's are the instructor's and stay as they are.
- `text/html` outputs: an allow-list of plain formatting tags and attributes; `<img>`
  only from `data:` URLs, links only to http(s) and mail.
- `image/svg+xml` outputs: no scripts, event handlers, foreign content or external
  references.
- Any other active type (`application/javascript`, widgets, ...) is dropped; output
  metadata keeps only numeric image sizes (nbconvert writes them into the page unquoted)
  and alt text, which it writes quoted and escaped.
"""
import functools
import html
import os
import re
import xml.etree.ElementTree as ElementTree

import bleach
import nbformat
from traitlets import Set

from coursekit.grading.quiet import CoursePreprocessor

# --- markdown ---------------------------------------------------------------------------

_FENCE_OPEN = re.compile(r"(`{3,}|~{3,})([^\n]*)\n?")
_BACKTICKS = re.compile(r"`+")
# A link's or image's destination (inline, or a reference definition at a line's start).
_DESTINATION = re.compile(r"(\]\([ \t]*\n?[ \t]*|^ {0,3}\[[^\]\n]+\]:[ \t]*\n?[ \t]*)"
                          r"(&lt;)?([^\s)]*)", re.MULTILINE)
_IMAGE_SOURCE = re.compile(r"(attachment:|data:image/(png|jpeg|gif|webp)[;,]|#)")
_LINK_TARGET = re.compile(r"(https?:|mailto:|attachment:|#)")


def inert_markdown(text):
    """Markdown that renders as it did, except that raw HTML shows as text."""
    out, prose = [], []
    lines = text.splitlines(keepends=True)
    index = 0
    while index < len(lines):
        line = lines[index]
        opened = _FENCE_OPEN.fullmatch(line)
        # Only a fence every renderer agrees on: at the margin, after a blank line (no
        # paragraph, quote or list can swallow it), closed by the first line that any
        # renderer could take as its end. Anything else is treated as prose.
        after_blank = index == 0 or not lines[index - 1].strip()
        if opened and after_blank and not (line[0] == "`" and "`" in opened.group(2)):
            close = re.compile(r"[ \t]*%s{3,}[ \t]*\n?" % re.escape(line[0]))
            end = next((j for j in range(index + 1, len(lines)) if close.fullmatch(lines[j])),
                       None)
            if end is not None:
                out.append(_inert_prose("".join(prose)))
                prose = []
                out.append("".join(lines[index:end + 1]))
                index = end + 1
                continue
        prose.append(line)
        index += 1
    out.append(_inert_prose("".join(prose)))
    return "".join(out)


def _inert_prose(text):
    out, i, n = [], 0, len(text)
    while i < n:
        ch = text[i]
        if ch == "\\" and i + 1 < n and text[i + 1] in "([":
            closing = "\\)" if text[i + 1] == "(" else "\\]"
            end = text.find(closing, i + 2)
            if end != -1:
                out.append(text[i:i + 2] + _inert_maths(text[i + 2:end]) + closing)
                i = end + 2
                continue
        if ch == "\\" and i + 1 < n:
            # An escaped character stays escaped; an escaped < becomes one that cannot open.
            out.append("&lt;" if text[i + 1] == "<" else text[i:i + 2])
            i += 2
        elif ch == "`":
            run = _BACKTICKS.match(text, i).group()
            end = _closing_backticks(text, i + len(run), run)
            if end is None:
                out.append(run)
                i += len(run)
            else:
                code = text[i + len(run):end]
                out.append(_inert_code(code) if "<" in code else run + code + run)
                i = end + len(run)
        elif ch == "$":
            delimiter = "$$" if text.startswith("$$", i) else "$"
            end = text.find(delimiter, i + len(delimiter))
            if end == -1:
                out.append(delimiter)
                i += len(delimiter)
            else:
                out.append(delimiter + _inert_maths(text[i + len(delimiter):end]) + delimiter)
                i = end + len(delimiter)
        elif ch == "<":
            out.append("&lt;")
            i += 1
        else:
            out.append(ch)
            i += 1
    return _DESTINATION.sub(_safe_destination, "".join(out))


def _closing_backticks(text, start, run):
    """Where a code span opened by `run` closes on the same line, or None."""
    for match in _BACKTICKS.finditer(text, start):
        if "\n" in text[start:match.start()]:
            return None
        if match.group() == run:
            return match.start()
    return None


def _inert_code(code):
    # Every punctuation mark as an entity: shows as itself, and no markdown or maths
    # delimiter survives inside the element.
    escaped = "".join("&#%d;" % ord(c) if not c.isalnum() and not c.isspace() and ord(c) < 128
                      else c for c in code)
    return "<code>%s</code>" % escaped


def _inert_maths(maths):
    return maths.replace("<", "\\lt ")


def _safe_destination(match):
    """Links go to the web, mail or the page; images come from the notebook itself.

    The destination is read as a browser would: entities and backslash escapes resolved,
    tabs, newlines and spaces dropped (`jav&#9;ascript:` is `javascript:` to a browser).
    """
    url = re.sub(r"[\x00-\x20\x7f\\]", "", html.unescape(match.group(3))).lower()
    relative = re.match(r"[^:/?#]*([/?#]|$)", url) and not url.startswith("//")
    if _is_image(match.string, match.start()):
        safe = _IMAGE_SOURCE.match(url) or relative
    else:
        safe = _LINK_TARGET.match(url) or relative or url.startswith("//")
    if safe:
        return match.group(0)
    return match.group(1) + ("#image-from-another-site-removed" if _is_image(
        match.string, match.start()) else "#unsafe-link-removed")


def _is_image(text, closing):
    """Whether the bracket closing at `closing` belongs to `![...]`."""
    if text[closing] != "]":
        return False
    depth = 0
    for index in range(closing, -1, -1):
        if text[index] == "]" and (index == 0 or text[index - 1] != "\\"):
            depth += 1
        elif text[index] == "[" and (index == 0 or text[index - 1] != "\\"):
            depth -= 1
            if depth == 0:
                return index > 0 and text[index - 1] == "!"
    return False


# --- HTML outputs ---------------------------------------------------------------------

_TAGS = {"a", "abbr", "b", "blockquote", "br", "caption", "code", "col", "colgroup", "dd",
         "del", "details", "div", "dl", "dt", "em", "h1", "h2", "h3", "h4", "h5", "h6", "hr",
         "i", "img", "kbd", "li", "ol", "p", "pre", "s", "samp", "small", "span", "strong",
         "sub", "summary", "sup", "table", "tbody", "td", "tfoot", "th", "thead", "tr", "u",
         "ul"}
# Their text would only be noise once the tags are gone.
_DROPPED_WITH_CONTENT = re.compile(
    r"<(script|style|template|noscript|iframe|object|textarea|title|xmp|noembed|noframes)"
    r"\b.*?</\1\s*>", re.IGNORECASE | re.DOTALL)
# Alt text longer than this is not a description: dropped.
MAX_ALT_TEXT = 2000
_DATA_IMAGE = re.compile(r"data:image/(png|jpeg|gif|webp);base64,[A-Za-z0-9+/=\s]*$")
_NUMBER = re.compile(r"\d{1,5}(\.\d+)?(px|%)?$")


def _allowed_attribute(tag, name, value):
    if name in ("class", "title", "alt"):
        return True
    if tag == "a" and name == "href":
        return re.match(r"(https?:|mailto:|#)", value.strip(), re.IGNORECASE) is not None
    if tag == "img" and name == "src":
        return _DATA_IMAGE.match(value.strip()) is not None
    if name in ("width", "height", "colspan", "rowspan"):
        return _NUMBER.match(value.strip()) is not None
    return tag in ("td", "th") and name == "align"


def inert_html(text):
    """HTML with only plain formatting left: no script, style, handler or remote load."""
    return bleach.clean(_DROPPED_WITH_CONTENT.sub("", text), tags=_TAGS,
                        attributes=_allowed_attribute,
                        protocols={"http", "https", "mailto", "data"}, strip=True,
                        strip_comments=True)


# --- SVG outputs ----------------------------------------------------------------------

SVG = "http://www.w3.org/2000/svg"
XLINK = "http://www.w3.org/1999/xlink"
_SVG_ELEMENTS = {"svg", "g", "defs", "path", "rect", "circle", "ellipse", "line", "polyline",
                 "polygon", "text", "tspan", "title", "desc", "clipPath", "mask", "marker",
                 "linearGradient", "radialGradient", "stop", "symbol", "use", "pattern",
                 "style", "image"}
_LOCAL_URL = re.compile(r"url\(\s*['\"]?\s*#", re.IGNORECASE)


def _svg_value_is_safe(name, value):
    if name.startswith("on"):
        return False
    if name == "href":
        return value.startswith("#") or _DATA_IMAGE.match(value.strip()) is not None
    without_local = _LOCAL_URL.sub("", value)
    return not re.search(r"url\(|javascript:|@import|expression\(", without_local,
                         re.IGNORECASE)


def _clean_svg_element(element):
    for child in list(element):
        namespace, _, local = child.tag.rpartition("}")
        if namespace.lstrip("{") != SVG or local not in _SVG_ELEMENTS or (
                local == "style" and not _svg_value_is_safe("style", child.text or "")):
            element.remove(child)
            continue
        _clean_svg_element(child)
    for name in list(element.attrib):
        local = name.rpartition("}")[2].lower()
        if not _svg_value_is_safe(local, element.attrib[name]):
            del element.attrib[name]


def inert_svg(text):
    """The drawing without anything that runs or loads; None when it is not SVG at all."""
    try:
        root = ElementTree.fromstring(text)
    except ElementTree.ParseError:
        return None
    if root.tag != "{%s}svg" % SVG:
        return None
    _clean_svg_element(root)
    for name in list(root.attrib):
        if not _svg_value_is_safe(name.rpartition("}")[2].lower(), root.attrib[name]):
            del root.attrib[name]
    ElementTree.register_namespace("", SVG)
    ElementTree.register_namespace("xlink", XLINK)
    return ElementTree.tostring(root, encoding="unicode")


# --- the preprocessor -----------------------------------------------------------------


@functools.lru_cache(maxsize=8)
def _markdown_sources(path, _mtime):
    notebook = nbformat.read(path, as_version=4)
    return frozenset(cell.source for cell in notebook.cells if cell.cell_type == "markdown")


class InertStudentHTML(CoursePreprocessor):
    """Make everything a student wrote or printed render as inert text and pictures.

    Why: the feedback page and the formgrader render the autograded notebook as HTML, the
    latter inside the instructor's Jupyter session; student markup must not run there.
    """

    passive_output_types = Set(
        {"text/plain", "text/latex", "image/png", "image/jpeg", "image/gif",
         "application/json"},
        help="Output types kept as they are: nbconvert and JupyterLab never run them.",
    ).tag(config=True)

    attachment_types = Set(
        {"image/png", "image/jpeg", "image/gif"},
        help="Attachment types kept in markdown cells (shown as images only).",
    ).tag(config=True)

    def preprocess(self, nb, resources):
        self._release_markdown = self._instructor_markdown(resources)
        return super().preprocess(nb, resources)

    def _instructor_markdown(self, resources):
        """The release's own markdown cells: the instructor wrote them, they may hold HTML."""
        from nbgrader.coursedir import CourseDirectory

        info = resources.get("nbgrader", {})
        try:
            coursedir = CourseDirectory(parent=self)
            folder = coursedir.format_path(coursedir.release_directory, ".", info["assignment"])
            path = os.path.join(folder, info["notebook"] + ".ipynb")
            return _markdown_sources(path, os.stat(path).st_mtime_ns)
        except (KeyError, OSError):
            return frozenset()

    def preprocess_cell(self, cell, resources, cell_index):
        if cell.cell_type == "markdown":
            if cell.source not in self._release_markdown:
                cell.source = inert_markdown(cell.source)
            for name, bundle in list(cell.get("attachments", {}).items()):
                for mimetype in set(bundle) - self.attachment_types:
                    del bundle[mimetype]
        elif cell.cell_type == "raw":
            cell.source = inert_html(cell.source)
        elif cell.cell_type == "code":
            for output in cell.outputs:
                if output.output_type in ("display_data", "execute_result"):
                    self._clean_output(output)
        return cell, resources

    def _clean_output(self, output):
        data = output.get("data", {})
        for mimetype in list(data):
            if mimetype in self.passive_output_types:
                continue
            value = data[mimetype]
            text = "".join(value) if isinstance(value, list) else value
            if mimetype == "text/html" and isinstance(text, str):
                data[mimetype] = inert_html(text)
            elif mimetype == "text/markdown" and isinstance(text, str):
                data[mimetype] = inert_markdown(text)
            elif mimetype == "image/svg+xml" and isinstance(text, str):
                data[mimetype] = inert_svg(text)
                if data[mimetype] is None:
                    del data[mimetype]
            else:
                del data[mimetype]
        metadata = output.get("metadata", {})
        for key in list(metadata):
            value = metadata[key]
            if isinstance(value, dict):
                for name in list(value):
                    number = (isinstance(value[name], (int, float))
                              and not isinstance(value[name], bool))
                    # Alt text is written quoted and escaped: text, whatever it says.
                    text = isinstance(value[name], str) and len(value[name]) <= MAX_ALT_TEXT
                    if not ((name in ("width", "height") and number)
                            or (name == "alt" and text)):
                        del value[name]
            elif not isinstance(value, bool):
                del metadata[key]
