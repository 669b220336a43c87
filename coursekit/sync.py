"""Keep the source notebook's generated cells in step with the package.

Two cells of ``source/<assignment>/<notebook>`` are not edited by hand: the self-check
helpers cell, which embeds ``checks.py`` verbatim, and the Colab badge, built from
``REPOSITORY``. ``python -m coursekit.sync`` rewrites them when they differ (``make
release`` runs it first); ``--check`` only reports, for the tests.
"""
import argparse
import sys
from pathlib import Path

import nbformat

from coursekit.intake import grade_id  # noqa: F401 (one definition, used from here too)

ROOT = Path(__file__).resolve().parent.parent
ASSIGNMENT = "bn"
NOTEBOOK = "11_3_Batch_Normalization.ipynb"
SOURCE_NOTEBOOK = ROOT / "source" / ASSIGNMENT / NOTEBOOK
# The GitHub repository the release is opened from in Colab (owner/name, branch).
REPOSITORY, BRANCH = "udl-courses/udl-11-3-batch-norm", "main"

HELPERS_ID = "self_check_helpers"
BADGE_ID = "colab_badge"


def colab_url():
    return ("https://colab.research.google.com/github/%s/blob/%s/release/%s/%s"
            % (REPOSITORY, BRANCH, ASSIGNMENT, NOTEBOOK))


def badge_source():
    return ('<a href="%s" target="_parent"><img '
            'src="https://colab.research.google.com/assets/colab-badge.svg" '
            'alt="Open In Colab"/></a>' % colab_url())


def helpers_source():
    halves = []
    for module, path in (("udl_bn_judge", "judge.py"), ("udl_bn_checks", "checks.py")):
        text = (Path(__file__).parent / path).read_text()
        if "\'\'\'" in text:
            raise ValueError("%s must not contain \'\'\' : it is embedded in a r\'\'\' string" % path)
        halves.append("    (%r, r\'\'\'%s\'\'\'),\n" % (module, text))
    return ("# @title Self-check helpers: run this cell (you do not need to read it)\n"
            "# It defines the modules udl_bn_judge and udl_bn_checks that the check cells\n"
            "# below call: the same checks that grade your work. Editing it changes nothing\n"
            "# at grading time.\n"
            "import sys, types\n"
            "for _name, _text in (\n" + "".join(halves) + "):\n"
            "  sys.modules[_name] = types.ModuleType(_name)\n"
            "  exec(compile(_text, _name + '.py', 'exec'), sys.modules[_name].__dict__)\n"
            "udl_bn_checks = sys.modules['udl_bn_checks']")


def generated_cells():
    return {HELPERS_ID: helpers_source(), BADGE_ID: badge_source()}


def stale_cells(notebook):
    """Ids of generated cells whose source differs from what the package generates."""
    wanted = generated_cells()
    present = {grade_id(cell): cell.source for cell in notebook.cells}
    return [cell_id for cell_id, source in wanted.items() if present.get(cell_id) != source]


def sync(path=SOURCE_NOTEBOOK, check_only=False):
    notebook = nbformat.read(path, as_version=4)
    stale = stale_cells(notebook)
    missing = [cell_id for cell_id in stale
               if cell_id not in {grade_id(cell) for cell in notebook.cells}]
    if missing:
        raise SystemExit("%s has no cell with grade_id %s" % (path, ", ".join(missing)))
    if stale and not check_only:
        wanted = generated_cells()
        for cell in notebook.cells:
            if grade_id(cell) in stale:
                cell.source = wanted[grade_id(cell)]
        nbformat.write(notebook, path)
    return stale


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="report, do not rewrite")
    args = parser.parse_args(argv)
    stale = sync(check_only=args.check)
    if stale and args.check:
        print("out of date in %s: %s (run python -m coursekit.sync)"
              % (SOURCE_NOTEBOOK.relative_to(ROOT), ", ".join(stale)))
        return 1
    print("updated: %s" % ", ".join(stale) if stale else "source notebook is up to date")
    return 0


if __name__ == "__main__":
    sys.exit(main())
