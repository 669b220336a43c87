"""Keep the source notebook's generated cells in step with the package.

Some cells of ``source/<assignment>/<notebook>`` are not edited by hand: the self-check
helpers cell, which imports ``udl_bn_helpers.py`` beside the notebook (also written here:
the files of ``coursekit/kernel/`` compressed, word for word; the release ships it,
grading copies the source's over the student's), the first cell, which fetches that file
in Colab, the Colab badge, built from ``REPOSITORY``, the last cell (the checks so far),
the prediction cells, written from ``coursekit.authoring.predictions`` (the instructor's
copy holds the measured choice, the release an empty guess), and the autograded test
cells with their points, from ``coursekit.kernel.testcells``. ``python -m
coursekit.authoring.sync`` rewrites them when they differ (``make release`` runs it
first); ``--check`` only reports, for the tests.
"""
import argparse
import base64
import sys
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import nbformat

from coursekit import record
from coursekit.authoring.predictions import PREDICTIONS
from coursekit.course import (ASSIGNMENT, BRANCH, HELPERS_ID, KERNEL_FILES, KERNEL_MODULES,
                              NOTEBOOK, REPOSITORY, ROOT, SOURCE_NOTEBOOK, grade_id, is_graded,
                              is_solution, settings)
from coursekit.kernel.testcells import TEST_CELLS

PACKED_WIDTH = 84  # characters of compressed text per line of the helpers cell
BADGE_ID = "colab_badge"
SUMMARY_ID = "checks_so_far"
INSTALL_ID = "install"
# The kernel's modules, in a file beside the notebook (helpers_file_text).
HELPERS_MODULE = "udl_bn_helpers"
HELPERS_FILE = HELPERS_MODULE + ".py"
HELPERS_PATH = SOURCE_NOTEBOOK.parent / HELPERS_FILE


def colab_url():
    return ("https://colab.research.google.com/github/%s/blob/%s/release/%s/%s"
            % (REPOSITORY, BRANCH, ASSIGNMENT, NOTEBOOK))


def badge_source():
    return ('<a href="%s" target="_parent"><img '
            'src="https://colab.research.google.com/assets/colab-badge.svg" '
            'alt="Open In Colab"/></a>' % colab_url())


def module_texts():
    """[(module name, its text)] of the modules the kernel runs, in course.KERNEL_MODULES's
    order: the files of coursekit/kernel/, then seed 0's expected numbers."""
    kernel = Path(__file__).resolve().parent.parent / "kernel"
    texts = [(name, (kernel / file).read_text()) for name, file in KERNEL_FILES.items()]
    return texts + [(KERNEL_MODULES[len(texts)], expected_source())]


def helpers_file_text():
    """udl_bn_helpers.py, shipped beside the notebook: importing it defines the kernel's
    modules. They travel compressed, so that the checks' messages and comments give
    nothing away before the predictions that ask for them. The kernel runs exactly the
    files' text, so fingerprints match the grader's."""
    modules = []
    for module, text in module_texts():
        packed = base64.b85encode(zlib.compress(text.encode(), 9)).decode()
        # base85 has no quote or backslash, so each chunk is a plain string literal.
        chunks = [packed[k:k + PACKED_WIDTH] for k in range(0, len(packed), PACKED_WIDTH)]
        modules.append("    (%r, (\n%s)),\n" % (module, "".join("      '%s'\n" % chunk
                                                             for chunk in chunks)))
    return ('"""The self-checks of Notebook 11.3: importing this module defines %s.\n\n'
            "They are testcells.py, judge.py and checks.py of coursekit/kernel/, and the\n"
            "numbers right answers give on seed 0, compressed so that they give nothing away\n"
            "before you predict.\n"
            "Written by coursekit/authoring/sync.py; editing it changes nothing at grading time.\n"
            '"""\n'
            "import base64, sys, types, zlib\n"
            "for _name, _packed in (\n" % ", ".join(name for name, _ in module_texts())
            + "".join(modules) + "):\n"
            "    _text = zlib.decompress(base64.b85decode(_packed)).decode()\n"
            "    sys.modules[_name] = types.ModuleType(_name)\n"
            "    exec(compile(_text, _name + '.py', 'exec'), sys.modules[_name].__dict__)\n")


def helpers_source():
    """The self-check helpers cell: a few lines that import the helpers file."""
    return ("# @title Self-check helpers: run this cell (you do not need to read it)\n"
            "# It defines the module udl_bn_checks that the check cells below call: the same\n"
            "# checks that grade your work, from %s beside this notebook (in\n"
            "# Colab the first cell fetches it). Editing this cell or that file changes\n"
            "# nothing at grading time.\n"
            "import sys, %s\n"
            "udl_bn_checks = sys.modules['udl_bn_checks']"
            % (HELPERS_FILE, HELPERS_MODULE))


def helpers_url():
    """Where Colab's first cell fetches the helpers file: the release's, in this repository."""
    return ("https://raw.githubusercontent.com/%s/%s/release/%s/%s"
            % (REPOSITORY, BRANCH, ASSIGNMENT, HELPERS_FILE))


def install_source():
    """The first code cell: what Colab lacks, mnist1d and the helpers file."""
    return ("# Colab has neither mnist1d nor the checks' file beside this notebook: get them\n"
            "# only when they are missing.\n"
            "import importlib.util, os, urllib.request\n"
            "if importlib.util.find_spec(\"mnist1d\") is None:\n"
            "    %%pip install --quiet mnist1d==0.0.2.post1\n"
            "if not os.path.exists(%r):\n"
            "    try:\n"
            "        urllib.request.urlretrieve(%r, %r)\n"
            "    except OSError as error:\n"
            "        print(\"Could not fetch %s (%%s): put it beside this notebook.\" %% error)"
            % (HELPERS_FILE, helpers_url(), HELPERS_FILE, HELPERS_FILE))


def expected_source():
    """The module udl_bn_expected: what right answers give on seed 0's inputs, as numbers
    (coursekit.authoring.reference computes them; its code stays with the grader)."""
    import torch

    from coursekit.authoring import reference

    # Graded kernels run torch on one thread; so are these numbers computed, to the bit.
    from coursekit.kernel import judge
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        expectations = reference.kernel_expectations()
    finally:
        torch.set_num_threads(threads)
    return ("import udl_bn_judge\n"
            "SEED_0 = udl_bn_judge.decode(%r)\n\n\n"
            "def expected(check, seed):\n"
            "    return SEED_0.get(check) if seed == 0 else None\n"
            % judge.encode(expectations))


def summary_source(notebook):
    """The notebook's last cell: the checks run so far, their points and the total, as
    Validate shows them (checks.checks_so_far). Its numbers come from TEST_CELLS and the
    notebook's answer graded by hand."""
    written = sum(settings(cell).get("points") or 0 for cell in notebook.cells
                  if is_graded(cell) and is_solution(cell))
    return ("# Your checks so far: each check you ran above, its points, and the total.\n"
            "import udl_bn_checks\n"
            "udl_bn_checks.checks_so_far(checks=%d, points=%d, written=%d)"
            % (len(TEST_CELLS), sum(t.points for t in TEST_CELLS), written))


def check_call(cell, seed=None):
    """How test cell `cell` (a testcells.TestCell) calls its check."""
    arguments = [cell.arguments, cell.options] + ([] if seed is None else ["seed=%d" % seed])
    return "udl_bn_checks.%s(%s)" % (cell.called, ", ".join(a for a in arguments if a))


def reseeded_in_kernel(cell):
    """Whether the cell's hidden part can run a second seed in the notebook's kernel: not
    for a check that compares with a right answer, whose numbers the kernel holds for seed
    0 only (coursekit.authoring.reference). The grader judges its own secret seed anyway."""
    from coursekit.kernel.judge import EXPECTING

    return cell.reseeded and cell.check not in EXPECTING


def test_cell_source(cell):
    """The text of test cell `cell`: the visible check, then the hidden tests."""
    return ("# Check (%d point%s): %s\n"
            "import udl_bn_checks\n"
            "udl_bn_checks.score(%s, %d)\n"
            "### BEGIN HIDDEN TESTS\n"
            "# The visible check first (so a failure repeats its message), then a "
            "second seed.\n"
            "udl_bn_checks.require(%s,\n"
            "                      %s)\n"
            "### END HIDDEN TESTS" % (
                cell.points, "" if cell.points == 1 else "s", cell.checks, check_call(cell),
                cell.points, check_call(cell),
                check_call(cell, 1 if reseeded_in_kernel(cell) else None)))


@dataclass(frozen=True)
class Generated:
    """What the package writes into one cell."""
    source: str
    release_source: Optional[str] = None  # None: the release keeps the source
    points: Optional[int] = None          # None: not an autograded test cell


def generated_cells(notebook):
    """{grade_id: Generated}."""
    cells = {HELPERS_ID: Generated(helpers_source()), BADGE_ID: Generated(badge_source()),
             INSTALL_ID: Generated(install_source()),
             SUMMARY_ID: Generated(summary_source(notebook))}
    cells.update({p.name: Generated(p.cell_source(p.measured), p.cell_source())
                  for p in PREDICTIONS})
    cells.update({t.grade_id: Generated(test_cell_source(t), points=t.points)
                  for t in TEST_CELLS})
    return cells


def _generated(cell):
    return Generated(cell.source, record.release_source(cell),
                     settings(cell).get("points") if is_graded(cell) else None)


def stale_cells(notebook, helpers_path=HELPERS_PATH):
    """Ids of generated cells whose text differs from what the package generates, and the
    helpers file's name when it does."""
    present = {grade_id(cell): _generated(cell) for cell in notebook.cells}
    stale = [cell_id for cell_id, wanted in generated_cells(notebook).items()
             if present.get(cell_id) != wanted]
    held = helpers_path.read_text() if helpers_path.is_file() else None
    return stale + ([HELPERS_FILE] if held != helpers_file_text() else [])


def place_helpers(folder):
    """Put the helpers file beside a notebook in `folder`, as the release ships it."""
    (Path(folder) / HELPERS_FILE).write_text(helpers_file_text())


def sync(path=SOURCE_NOTEBOOK, check_only=False):
    notebook = nbformat.read(path, as_version=4)
    stale = stale_cells(notebook)
    missing = [cell_id for cell_id in stale if cell_id != HELPERS_FILE
               and cell_id not in {grade_id(cell) for cell in notebook.cells}]
    if missing:
        raise SystemExit("%s has no cell with grade_id %s" % (path, ", ".join(missing)))
    if stale and not check_only:
        wanted = generated_cells(notebook)
        for cell in notebook.cells:
            if grade_id(cell) in stale:
                generated = wanted[grade_id(cell)]
                cell.source = generated.source
                if generated.release_source is not None:
                    record.set_release_source(cell, generated.release_source)
                if generated.points is not None:
                    cell.metadata.nbgrader["points"] = generated.points
        nbformat.write(notebook, path)
        if HELPERS_FILE in stale:
            place_helpers(Path(path).parent)
    return stale


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="report, do not rewrite")
    args = parser.parse_args(argv)
    stale = sync(check_only=args.check)
    if stale and args.check:
        print("out of date in %s: %s (run python -m coursekit.authoring.sync)"
              % (SOURCE_NOTEBOOK.relative_to(ROOT), ", ".join(stale)))
        return 1
    print("updated: %s" % ", ".join(stale) if stale else "source notebook is up to date")
    return 0


if __name__ == "__main__":
    sys.exit(main())
