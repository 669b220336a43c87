"""The grade table: ``grades.csv`` and a short summary, read from the gradebook.

One row per student: total points, then the points of every test cell, so an instructor
sees at a glance which checks a class fails; ``grades.png`` beside it, how many students
passed each test, which shows the class's common mistakes; and ``predictions.png``, how the
class predicted before each run (coursekit.authoring.predictions), its misconceptions.
``python -m coursekit.classroom.report``.
The ``problem`` column says what the autograder recorded a submission needs attention for
(coursekit.grading.attention; NEEDS ATTENTION in the table, counted as the autograder counts it,
and the only thing that makes the exit status non-zero), then notes on graded work (NOTE
in the table): fixed cells the grader put back (edits there were not graded; a cell as
some published release had it is no edit, coursekit.authoring.releases), a written answer changed
since it was graded by hand, a grade taken against an earlier release. When a total
changed since the last grades.csv, the report says whose and from what to what.
"""
import csv
import math
import sys
import warnings

import nbformat
from dataclasses import dataclass, field
from typing import Dict, Optional

from coursekit.authoring import predictions
from coursekit.grading import quiet
from coursekit.grading.attention import of_class as needs_attention
from coursekit.course import ASSIGNMENT, NOTEBOOK, ROOT, gradebook_url, notebook_metadata


@dataclass(frozen=True)
class GradeRow:
    """One student's line of the grade table, as the gradebook holds it."""
    student: str
    score: float                  # autograded and hand-graded points (before a late penalty)
    max_score: float
    per_test: Dict[str, float]    # autograded test cell: points earned
    by_hand: Dict[str, Optional[float]]   # written answer: its grade, None until given
    comments: Dict[str, str]      # written answer: the instructor's comment
    seconds_late: float           # past the due date (0: on time, or no due date set)
    late_penalty: float
    waits_for_hand_grading: bool
    # Written answers changed since they were graded by hand: {name: the old grade, which
    # the gradebook keeps (and the total counts) until the answer is graded again}.
    regrade_by_hand: Dict[str, float] = field(default_factory=dict)


def collect(url, assignment=ASSIGNMENT):
    """[GradeRow] sorted by student, the autograded test names in notebook order, and
    {test name: points possible}."""
    from nbgrader.api import Gradebook

    rows, tests, max_points = [], [], {}
    with warnings.catch_warnings():
        quiet.gradebook_autoflush()  # as in nbgrader_config.py; any other warning shows
        with Gradebook(url) as gradebook:
            for submission in gradebook.assignment_submissions(assignment):
                per_test, by_hand, comments, changed = {}, {}, {}, {}
                for notebook in submission.notebooks:
                    for grade in notebook.grades:
                        if grade.cell.cell_type == "code" and grade.auto_score is not None:
                            per_test[grade.name] = grade.score
                            max_points[grade.name] = grade.max_score
                            if grade.name not in tests:
                                tests.append(grade.name)
                        elif grade.cell.cell_type == "markdown":
                            # nbgrader gives an untouched answer 0 by itself.
                            by_hand[grade.name] = (None if grade.needs_manual_grade
                                                   else grade.score)
                            if grade.needs_manual_grade and grade.manual_score is not None:
                                # A hand grade kept, not confirmed: the answer changed
                                # since (coursekit.grading.gradebook.SaveGrades).
                                changed[grade.name] = grade.manual_score
                    comments.update((comment.name, comment.manual_comment)
                                    for comment in notebook.comments
                                    if comment.name in by_hand and comment.manual_comment)
                rows.append(GradeRow(submission.student_id, submission.score,
                                     submission.max_score, per_test, by_hand, comments,
                                     submission.total_seconds_late or 0,
                                     submission.late_submission_penalty or 0,
                                     bool(submission.needs_manual_grade), changed))
    return sorted(rows, key=lambda row: row.student), tests, max_points


def points_by_student(url, assignment=ASSIGNMENT):
    """{student: {test name: points earned}}, from the gradebook."""
    rows, _, _ = collect(url, assignment)
    return {row.student: row.per_test for row in rows}


def of_submissions(some, of):
    """'1 of 3 submissions has', '2 of 3 submissions have': the start of a count's sentence."""
    return "%d of %d submission%s %s" % (some, of, "" if of == 1 else "s",
                                         "has" if some == 1 else "have")


def whole_seconds_late(seconds_late):
    """How late, in whole seconds as every grade file writes it: rounded up, so that work
    even a moment late never reads as on time (0: on time)."""
    return max(0, math.ceil(seconds_late or 0))


def lateness(row):
    """'' when on time; else how late, to the second grades-lms.csv's seconds_late gives,
    and what it cost (nbgrader_config.py's policy)."""
    seconds = whole_seconds_late(row.seconds_late)
    if not seconds:
        return ""
    hours, rest = divmod(seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    late = "%d h %02d min" % (hours, minutes) if hours else "%d min" % minutes if minutes else ""
    if seconds:
        late += (" %02d s" if late else "%d s") % seconds
    cost = "%g points off" % row.late_penalty if row.late_penalty else "no penalty"
    return "%s late, %s" % (late, cost)


def put_back(root=ROOT, assignment=ASSIGNMENT):
    """{student: which fixed cells grading put back}, for every graded notebook that
    needed it, from the record the grader wrote into it (coursekit.grading.intake). A fixed cell
    that reads as in any published release (coursekit.authoring.releases) is not an edit: the
    student kept the release they fetched before a change mid-term."""
    import types

    from coursekit.record import recorded_fixed_cells
    from coursekit.authoring.releases import published_digests

    published = published_digests(root)
    found = {}
    for path in sorted((root / "autograded").glob("*/%s/%s" % (assignment, NOTEBOOK))):
        student = path.parent.parent.name
        edited, deleted = recorded_fixed_cells(
            types.SimpleNamespace(metadata=notebook_metadata(path)))
        if edited and published:
            edited = [name for name in edited if not _as_published(
                root / "submitted" / student / assignment / NOTEBOOK, name, published)]
        said = (["edits to fixed cells not graded: " + ", ".join(edited)] if edited else []) \
            + (["deleted cells put back: " + ", ".join(deleted)] if deleted else [])
        if said:
            found[student] = "; ".join(said)
    return found


def changed_since_hand_graded(rows):
    """{student: what to grade again}, for answers changed since they were graded by hand."""
    def kept(name, points):
        return "%s changed since you graded it (your %g point%s and comment kept until you " \
            "grade it again in Manual Grading)" % (name, points, "" if points == 1 else "s")

    return {row.student: "; ".join(kept(name, row.regrade_by_hand[name])
                                   for name in sorted(row.regrade_by_hand))
            for row in rows if row.regrade_by_hand}


def merged(*notes):
    """One {student: sentence} from several, a student's sentences joined in order."""
    found = {}
    for note in notes:
        for student, said in note.items():
            found[student] = "%s; %s" % (found[student], said) if student in found else said
    return found


def _as_published(path, name, published):
    """Whether the submitted notebook at `path` holds fixed cell `name` as some release
    published it (False when it cannot tell: the note stays)."""
    from coursekit.course import grade_id
    from coursekit.grading.intake import SubmissionProblem, read_submission
    from coursekit.authoring.releases import as_published

    try:
        notebook = read_submission(str(path))
    except SubmissionProblem:
        return False
    # The first cell of that id is the one grading compares (coursekit.grading.intake).
    cell = next((cell for cell in notebook.cells if grade_id(cell) == name), None)
    return cell is not None and as_published(cell, published)


def graded_against_an_earlier_release(url, root=ROOT, assignment=ASSIGNMENT):
    """Students whose graded notebook was graded against an earlier release: a fixed or
    graded cell's checksum (nbgrader writes the gradebook's into every graded notebook)
    is no longer the gradebook's, as after a change of points or wording mid-term. Their
    scores are the old release's until `make autograde` grades them again."""
    from nbgrader.api import Gradebook, MissingEntry

    from coursekit.course import grade_id

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with Gradebook(url) as gradebook:
            try:
                current = {cell.name: cell.checksum for cell in gradebook.find_notebook(
                    NOTEBOOK[:-len(".ipynb")], assignment).source_cells}
            except MissingEntry:
                return []
    stale = []
    for path in sorted((root / "autograded").glob("*/%s/%s" % (assignment, NOTEBOOK))):
        try:
            notebook = nbformat.read(str(path), as_version=4)
        except Exception:  # the grade table names unreadable work elsewhere
            continue
        graded = {grade_id(cell): cell.metadata.nbgrader.get("checksum")
                  for cell in notebook.cells if grade_id(cell)}
        # A cell the graded notebook lacks (an answer the student deleted) says nothing
        # about the release it was graded against.
        if any(name in graded and graded[name] != checksum
               for name, checksum in current.items()):
            stale.append(path.parent.parent.name)
    return stale


EARLIER_RELEASE = ("graded against an earlier release (points or fixed cells changed "
                   "since): run make autograde")


def grade_changes(before, rows):
    """[(student, (score, max) before, (score, max) now)] that differ, in student order;
    `before` as read_totals reads the last grades.csv."""
    from coursekit.escape import neutralize

    return [(row.student, before[neutralize(row.student, keep="")], (row.score, row.max_score))
            for row in rows if neutralize(row.student, keep="") in before
            and before[neutralize(row.student, keep="")] != (row.score, row.max_score)]


def read_totals(path):
    """{student as grades.csv writes it: (score, max_score)} of the last grades.csv."""
    try:
        with open(path, newline="") as handle:
            lines = list(csv.DictReader(handle))
    except (OSError, csv.Error, UnicodeDecodeError):
        return {}
    totals = {}
    for line in lines:
        try:
            totals[line["student"]] = (float(line["score"]), float(line["max_score"]))
        except (KeyError, TypeError, ValueError):  # a student with no grade
            continue
    return totals


def write_grades_csv(rows, tests, path, problem_of=None):
    """grades.csv: a row per graded student, then one per student with a problem and no
    grade. Every cell is text a spreadsheet shows, never runs (student ids come from
    folder names, which students choose through the exchange); the id and the problem,
    which quotes the student's folder, keep no control character."""
    from coursekit.escape import neutralize

    problem_of = problem_of or {}
    by_hand = sorted({name for row in rows for name in row.by_hand})
    ungraded = sorted(set(problem_of) - {row.student for row in rows})
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["student", "score", "max_score"] + tests + by_hand
                        + ["%s comment" % name for name in by_hand] + ["late", "problem"])
        for row in rows:
            writer.writerow([neutralize(row.student, keep="")] + [neutralize(cell) for cell in (
                ["%g" % row.score, "%g" % row.max_score]
                + ["%g" % row.per_test[t] if t in row.per_test else "" for t in tests]
                + ["" if row.by_hand.get(name) is None else "%g" % row.by_hand[name]
                   for name in by_hand]
                + [row.comments.get(name, "") for name in by_hand]
                + [lateness(row)])] + [neutralize(problem_of.get(row.student, ""), keep="")])
        for student in ungraded:
            writer.writerow([neutralize(student, keep="")]
                            + [""] * (2 + len(tests) + 2 * len(by_hand))
                            + ["", neutralize(problem_of[student], keep="")])


def pass_counts(rows, tests, max_points):
    """{test: how many students earned its full points}, in notebook order."""
    return {test: sum(1 for row in rows if row.per_test.get(test, 0) >= max_points[test])
            for test in tests}


def write_pass_chart(rows, tests, max_points, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from coursekit.grading.verdicts import test_name

    counts = pass_counts(rows, tests, max_points)
    names = [test_name(test) for test in tests]
    figure, ax = plt.subplots(figsize=(8, 0.45 * len(tests) + 1.4))
    bars = ax.barh(names, [counts[t] for t in tests], color="#4c72b0")
    ax.bar_label(bars, labels=["%d of %d" % (counts[t], len(rows)) for t in tests],
                 padding=4)
    ax.invert_yaxis()  # notebook order, top to bottom
    ax.set_xlim(0, len(rows) * 1.15)
    ax.set_xlabel("students who earned the test's full points")
    ax.set_title("Which checks the class passes (%d students)" % len(rows))
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return counts


def submitted_notebooks(root=ROOT, assignment=ASSIGNMENT):
    """Every student's submitted notebook that can be read, in student order."""
    from coursekit.grading.intake import SubmissionProblem, read_submission

    notebooks = []
    for path in sorted((root / "submitted").glob("*/%s/%s" % (assignment, NOTEBOOK))):
        try:
            notebooks.append(read_submission(str(path)))
        except SubmissionProblem:  # the grade table already says what is wrong with it
            continue
    return notebooks


def write_prediction_chart(notebooks, path):
    """How the class predicted before each run (coursekit.authoring.predictions), one bar per
    prediction split by choice; the choice the run shows is green. Returns the tally."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    counts = predictions.tally(notebooks)
    figure, ax = plt.subplots(figsize=(12, 0.55 * len(counts) + 1.6))
    colors = {predictions.OWN_WORDS: "#8172b3", predictions.NONE: "#dddddd"}
    for row, prediction in enumerate(predictions.PREDICTIONS):
        start = 0
        other_colors = iter(plt.cm.Oranges([0.7, 0.5, 0.35, 0.2]))
        for choice, count in counts[prediction.name].items():
            if not count:
                continue
            color = ("#55a868" if choice == prediction.measured
                     else colors.get(choice) if choice in colors else next(other_colors))
            ax.barh(row, count, left=start, color=color, edgecolor="white")
            # A narrow segment shows its count only; the misconception is named on the right.
            wide = count >= 0.2 * len(notebooks)
            ax.text(start + count / 2, row, "%s (%d)" % (choice, count) if wide else count,
                    ha="center", va="center", fontsize=7, clip_on=True)
            start += count
        misconceptions = {choice: count for choice, count in counts[prediction.name].items()
                          if choice in prediction.choices and choice != prediction.measured}
        if any(misconceptions.values()):
            common = max(misconceptions, key=misconceptions.get)
            ax.text(len(notebooks) * 1.02, row, "most common other guess:\n%s (%d)"
                    % (common, misconceptions[common]), va="center", fontsize=7)
    ax.set_yticks(range(len(counts)), [p.name.replace("prediction_", "")
                                       for p in predictions.PREDICTIONS])
    ax.invert_yaxis()  # notebook order, top to bottom
    ax.set_xlim(0, max(len(notebooks), 1))
    ax.set_xlabel("students. Green: what the notebook's run shows; orange: the other "
                  "choices; purple: own words; gray: no prediction. Never graded.")
    ax.set_title("How the class predicted before each run (%d students)" % len(notebooks))
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return counts


def table(rows, problem_of=None, notes=None):
    """The grade table as printed: ids and problems (which quote the student's folder) with
    their control characters escaped. `problem_of`: what needs attention (as the autograder
    counts it); `notes`: what the instructor may want to look at, graded all the same."""
    from coursekit.escape import printable

    problem_of, notes = problem_of or {}, notes or {}
    ungraded = sorted(set(problem_of) - {row.student for row in rows})
    width = max([len("student")] + [len(printable(row.student)) for row in rows]
                + [len(printable(student)) for student in ungraded])
    lines = ["%-*s  %6s" % (width, "student", "points")]
    for row in rows:
        line = "%-*s  %6s" % (width, printable(row.student),
                              "%g/%g" % (row.score, row.max_score))
        if lateness(row):
            line += "  LATE: " + lateness(row)
        if row.student in problem_of:
            line += "  NEEDS ATTENTION: " + printable(problem_of[row.student])
        if row.student in notes:
            line += "  NOTE: " + printable(notes[row.student])
        lines.append(line)
    lines += ["%-*s  %6s  NEEDS ATTENTION: %s" % (width, printable(student), "-",
                                                  printable(problem_of[student]))
              for student in ungraded]
    return "\n".join(lines)


def main(root=ROOT):
    rows, tests, max_points = collect(gradebook_url(root))
    if not rows:
        print("No graded submissions in the gradebook: run `make autograde` first.")
        return 1
    attention = needs_attention(root)
    # Graded, but with edits the grader put back, a written answer changed since it was
    # graded by hand, or graded against an earlier release: worth a look, not counted
    # among those needing attention (the autograder's own count).
    earlier = {student: EARLIER_RELEASE
               for student in graded_against_an_earlier_release(gradebook_url(root), root)}
    notes = merged(put_back(root), changed_since_hand_graded(rows), earlier)
    before = read_totals(root / "grades.csv")
    write_grades_csv(rows, tests, root / "grades.csv", merged(attention, notes))
    write_pass_chart(rows, tests, max_points, root / "grades.png")
    write_prediction_chart(submitted_notebooks(root), root / "predictions.png")
    print(table(rows, attention, notes))
    # Counted as the autograder's summary counts them (coursekit.grading.parallel).
    students = {row.student for row in rows} | set(attention)
    print("\n%d graded, %d need attention%s." % (
        len(students) - len(attention), len(attention),
        " (%d more with a note)" % len(set(notes) - set(attention)) if notes else ""))
    if earlier:
        print("%d graded against an earlier release, whose points or fixed cells have "
              "changed since: their totals are out of the new maximum but score the old "
              "release until `make autograde` grades them again." % len(earlier))
    changes = grade_changes(before, rows)
    if changes:
        from coursekit.escape import printable

        print("Grades changed since the last report: " + ", ".join(
            "%s %g/%g -> %g/%g" % ((printable(student),) + old + new)
            for student, old, new in changes))
    by_hand = [row for row in rows if row.waits_for_hand_grading]
    if by_hand:
        changed = sum(1 for row in by_hand if row.regrade_by_hand)
        print("\n%s a written answer to grade by hand (the formgrader: Manual Grading); "
              "until then %s." % (of_submissions(len(by_hand), len(rows)),
                                  "it counts 0 in the total" if not changed else
                                  "it counts 0 in the total, or your earlier grade where the "
                                  "answer changed since you graded it (%d, NOTE above)"
                                  % changed))
    print("\nPer-test points for each student: grades.csv; "
          "how many passed each test: grades.png; how the class predicted: predictions.png")
    return 1 if attention else 0


if __name__ == "__main__":
    sys.exit(main())
