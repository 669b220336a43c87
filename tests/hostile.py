"""Hostile and broken submissions, one per case that safe grading must survive.

Each builder takes the test's loopback port and returns what lands in the student's
`submitted/<student>/bn/` folder: a notebook, raw bytes for a broken file, or None for a
folder without the notebook. Students are graded in name order; `zz_reference` comes last
so that every hostile notebook runs before an honest one.
"""
import copy

import nbformat

from coursekit.samples import CLASS_CELL, make_submission, solution_cells
from coursekit.sync import grade_id

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

MEMORY_BOMB = r'''
def hog():
    blocks = []
    while True:
        blocks.append(bytearray(2**28))
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

STUBBORN_LOOP = r'''
while True:
    try:
        while True:
            pass
    except KeyboardInterrupt:
        pass
'''


CPU_HOG = "total = 0\nwhile True:\n    total += 1\n"


def cpu_hog(port):
    """Burns CPU right after the imports, for longer than the kernel's CPU allowance."""
    return _insert_after(reference(), "imports", CPU_HOG)


def reference():
    return make_submission(solution_cells())


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
    return _insert_after(reference(), CLASS_CELL, MEMORY_BOMB)


def process_bomb(port):
    return _insert_after(reference(), CLASS_CELL, PROCESS_BOMB)


def endless_loop(port):
    return _insert_after(reference(), CLASS_CELL, ENDLESS_LOOP)


def stubborn_loop(port):
    """Swallows every interrupt, after the network checks and before the other TODOs."""
    return _insert_after(reference(), "run_batchnorm", STUBBORN_LOOP)


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
    "zz_reference": lambda port: reference(),
}
# Students whose file cannot be graded: each must be named in the log and the grade table.
BROKEN = {"unmatchable": "cannot be matched to the release", "not_json": "is not valid JSON",
          "empty": "is empty", "missing": "is missing"}
