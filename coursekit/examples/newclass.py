"""`make new-class`: the course without its example class, ready for your own students.

The course ships four example students (coursekit.examples.samples.COMMITTED) under submitted/,
with their graded notebooks and feedback pages; left in, they are graded, exported and
compared with a real class. This removes them: their folders under submitted/,
autograded/ and feedback/, their rows in the gradebook, and a grades.csv that holds only
them. The release, the config, the source and everything else stay.

It never deletes anything of a real class. A folder named like an example is only removed
when its submission is the shipped example, file for file. When any other student is
present (a folder under submitted/, autograded/ or feedback/, or a row in the gradebook),
it refuses, naming them, and changes nothing; `--keep-others` (make new-class
KEEP_OTHERS=1) removes the examples and leaves those students as they are.

    python -m coursekit.examples.newclass [--keep-others]
"""
import argparse
import csv
import json
import shutil
import sys
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import List

from coursekit.course import ASSIGNMENT, NOTEBOOK, ROOT, gradebook_url
from coursekit.examples.samples import COMMITTED, sample_submission

FOLDERS = ("submitted", "autograded", "feedback")


@dataclass
class Plan:
    """What a new class removes (the verified examples) and whom it must leave alone."""
    examples: List[str] = field(default_factory=list)
    others: List[str] = field(default_factory=list)
    # Where each other student was found, for the refusal: {student: [places]}.
    found_in: dict = field(default_factory=dict)


def is_shipped_example(root, student):
    """Whether submitted/<student>/ holds exactly the shipped example's notebook."""
    folder = Path(root) / "submitted" / student
    files = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*")
                   if not p.is_dir()) if folder.is_dir() else []
    if files != ["%s/%s" % (ASSIGNMENT, NOTEBOOK)]:
        return False
    import nbformat

    path = folder / ASSIGNMENT / NOTEBOOK
    if path.is_symlink():
        return False
    try:
        held = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return held == json.loads(nbformat.writes(sample_submission(student)))


def gradebook_students(root):
    path = Path(root) / "gradebook.db"
    if not path.exists():
        return []
    from nbgrader.api import Gradebook

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with Gradebook(gradebook_url(root)) as gradebook:
            return [student.id for student in gradebook.students]


def plan(root=ROOT):
    root = Path(root)
    places = {}
    for folder in FOLDERS:
        if (root / folder).is_dir():
            for entry in sorted((root / folder).iterdir()):
                places.setdefault(entry.name, []).append(folder + "/")
    for student in gradebook_students(root):
        places.setdefault(student, []).append("the gradebook")
    result = Plan()
    for student in sorted(places):
        if student in COMMITTED and ("submitted/" not in places[student]
                                     or is_shipped_example(root, student)):
            result.examples.append(student)
        else:
            result.others.append(student)
            result.found_in[student] = places[student]
    return result


def remove_examples(root, examples):
    """Remove the examples' folders and gradebook rows; returns what is left of theirs."""
    root = Path(root)
    for student in examples:
        for folder in FOLDERS:
            path = root / folder / student
            if path.is_symlink() or path.is_file():
                path.unlink()
            elif path.is_dir():
                shutil.rmtree(path)
    if (root / "gradebook.db").exists():
        from nbgrader.api import Gradebook, MissingEntry

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with Gradebook(gradebook_url(root)) as gradebook:
                for student in examples:
                    try:
                        gradebook.remove_student(student)
                    except MissingEntry:
                        pass
    grades = root / "grades.csv"
    if grades.exists() and set(_students_in(grades)) <= set(examples):
        grades.unlink()


def _students_in(path):
    try:
        with open(path, newline="") as handle:
            return [row.get("student", "") for row in csv.DictReader(handle)]
    except (OSError, csv.Error, UnicodeDecodeError):
        return [None]  # unreadable: never taken for the examples' own


def main(argv=None, root=ROOT):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep-others", action="store_true",
                        help="remove the examples even when other students are present, "
                        "and leave those students as they are")
    args = parser.parse_args(argv)
    from coursekit.escape import printable

    release = Path(root) / "release" / ASSIGNMENT / NOTEBOOK
    if not release.is_file():
        # The examples are told from real students by comparison with the release.
        print("Not starting a new class: there is no release (%s) to tell the example "
              "students from yours; run make release first." % release, file=sys.stderr)
        return 1
    found = plan(root)
    if found.others and not args.keep_others:
        print("Not starting a new class: %s %s not among the shipped examples (%s), and "
              "nothing of a real class is deleted; to remove only the examples and keep "
              "them, run make new-class KEEP_OTHERS=1." % (
                  ", ".join("%s (%s)" % (printable(s), ", ".join(found.found_in[s]))
                            for s in found.others),
                  "is" if len(found.others) == 1 else "are", ", ".join(COMMITTED)),
              file=sys.stderr)
        return 1
    if not found.examples:
        print("No example students left: the class is yours.")
        return 0
    remove_examples(root, found.examples)
    kept = (" Kept as they were: %s." % ", ".join(map(printable, found.others))
            if found.others else "")
    print("Removed the example students %s (their submitted/, autograded/ and feedback/ "
          "folders and gradebook rows); the release, the config and the source are as they "
          "were.%s Next: collect your students' work into submitted/<student>/%s/ (or use "
          "the exchange), then make grade." % (", ".join(found.examples), kept, ASSIGNMENT))
    return 0


if __name__ == "__main__":
    sys.exit(main())
