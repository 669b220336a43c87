"""The README's pictures: the notebook's figures exactly as the graded reference drew them.

``python -m coursekit.examples.pictures`` (run by ``make grade``) copies the figure of each cell in
PICTURES out of ``autograded/reference/``, so the README always shows what a student's
completed notebook draws. The tests check the committed copies are in step.
"""
import base64
import sys

import nbformat

from coursekit.course import ASSIGNMENT, NOTEBOOK, ROOT, grade_id

# Cell of the notebook -> picture under docs/.
PICTURES = {
    "draw_figure": "variance-growth.png",
    "draw_three_curves": "three-networks.png",
    "draw_training": "training.png",
}


def figures(notebook):
    """{cell grade_id: PNG bytes of its first figure}."""
    found = {}
    for cell in notebook.cells:
        for output in cell.get("outputs", []):
            if "image/png" in output.get("data", {}) and grade_id(cell) not in found:
                found[grade_id(cell)] = base64.b64decode(output["data"]["image/png"])
    return found


def reference_notebook(root=ROOT):
    return root / "autograded" / "reference" / ASSIGNMENT / NOTEBOOK


def main(root=ROOT):
    path = reference_notebook(root)
    if not path.exists():
        # A real class has no student called "reference": its report is the grade table.
        print("README pictures left as they are: no graded example reference (%s)."
              % path.relative_to(root))
        return 0
    drawn = figures(nbformat.read(path, as_version=4))
    missing = sorted(set(PICTURES) - set(drawn))
    if missing:
        print("The graded reference drew no figure in %s." % ", ".join(missing))
        return 1
    (root / "docs").mkdir(exist_ok=True)
    for cell, name in PICTURES.items():
        (root / "docs" / name).write_bytes(drawn[cell])
    print("README pictures:", ", ".join("docs/" + name for name in PICTURES.values()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
