"""The grade table: ``grades.csv`` and a short summary, read from the gradebook.

One row per student: total points, then the points of every test cell, so an instructor
sees at a glance which checks a class fails; ``grades.png`` beside it, how many students
passed each test, which shows the class's common mistakes; and ``predictions.png``, how the
class predicted before each run (coursekit.predictions), its misconceptions.
``python -m coursekit.report``.
The ``problem`` column (NEEDS ATTENTION in the table) says why a submission was not graded,
or which fixed cells the grader put back (edits there were not graded); only the former
make the exit status non-zero.
"""
import csv
import sys
import warnings

from coursekit import predictions
from coursekit.course import ASSIGNMENT, NOTEBOOK, ROOT, gradebook_url


def collect(url, assignment=ASSIGNMENT):
    """[(student, score, max_score, {test name: score})] sorted by student, test names, and
    {test name: points possible}."""
    from nbgrader.api import Gradebook

    rows, tests, max_points = [], [], {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # SQLAlchemy's SAWarnings say nothing to an instructor
        with Gradebook(url) as gradebook:
            for submission in gradebook.assignment_submissions(assignment):
                per_test = {}
                for notebook in submission.notebooks:
                    for grade in notebook.grades:
                        if grade.cell.cell_type == "code" and grade.auto_score is not None:
                            per_test[grade.name] = grade.score
                            max_points[grade.name] = grade.max_score
                            if grade.name not in tests:
                                tests.append(grade.name)
                rows.append((submission.student_id, submission.score, submission.max_score,
                             per_test))
    return sorted(rows), tests, max_points


def points_by_student(url, assignment=ASSIGNMENT):
    """{student: {test name: points earned}}, from the gradebook."""
    rows, _, _ = collect(url, assignment)
    return {student: per_test for student, _, _, per_test in rows}


def awaiting_hand_grading(url, assignment=ASSIGNMENT):
    """Students whose written answers still need an instructor's grade."""
    from nbgrader.api import Gradebook

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with Gradebook(url) as gradebook:
            return sorted(submission.student_id
                          for submission in gradebook.assignment_submissions(assignment)
                          if submission.needs_manual_grade)


def problems(root=ROOT, assignment=ASSIGNMENT):
    """{student: why their submission was not graded}, for every submission folder."""
    from coursekit.autograde import problem_of, release_notebooks
    from nbgrader.coursedir import CourseDirectory

    releases = release_notebooks(CourseDirectory(root=str(root)), assignment)
    found = {}
    for folder in sorted((root / "submitted").glob("*/" + assignment)):
        student = folder.parent.name
        try:
            problem = problem_of(str(folder), releases)
        except Exception as error:  # one odd file must not hide the whole class's table
            found[student] = "could not be checked (%s: %s); see the autograde log" % (
                type(error).__name__, str(error).splitlines()[0][:100] if str(error) else "")
            continue
        if problem:
            found[student] = problem.split(": ", 1)[1]
        elif not (root / "autograded" / student / assignment / NOTEBOOK).exists():
            found[student] = "not graded: see the autograde log"
    return found


def _graded_metadata(root, assignment, student="*"):
    """(student, metadata of their graded notebook), for every student whose folder name
    matches the glob `student`."""
    import json

    for path in sorted((root / "autograded").glob("%s/%s/%s" % (student, assignment,
                                                                NOTEBOOK))):
        try:
            with open(path, encoding="utf-8") as handle:
                metadata = json.load(handle).get("metadata")
        except (OSError, ValueError, AttributeError):
            continue
        yield path.parent.parent.name, metadata if isinstance(metadata, dict) else {}


def tampered(root=ROOT, assignment=ASSIGNMENT, student="*"):
    """{student: the grader's sentence}, for every graded notebook it flagged
    (coursekit.grader), among the students matching the glob `student`."""
    from coursekit.grader import recorded_tampering

    return {name: recorded_tampering(metadata)
            for name, metadata in _graded_metadata(root, assignment, student)
            if recorded_tampering(metadata)}


def put_back(root=ROOT, assignment=ASSIGNMENT):
    """{student: which fixed cells grading put back}, for every graded notebook that
    needed it, from the record the grader wrote into it (coursekit.intake)."""
    import types

    from coursekit.intake import recorded_fixed_cells

    found = {}
    for student, metadata in _graded_metadata(root, assignment):
        edited, deleted = recorded_fixed_cells(types.SimpleNamespace(metadata=metadata))
        said = (["edits to fixed cells not graded: " + ", ".join(edited)] if edited else []) \
            + (["deleted cells put back: " + ", ".join(deleted)] if deleted else [])
        if said:
            found[student] = "; ".join(said)
    return found


def write_csv(rows, tests, path, problem_of=None):
    problem_of = problem_of or {}
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["student", "score", "max_score"] + tests + ["problem"])
        for student, score, max_score, per_test in rows:
            writer.writerow([student, "%g" % score, "%g" % max_score]
                            + ["%g" % per_test[t] if t in per_test else "" for t in tests]
                            + [problem_of.get(student, "")])


def pass_counts(rows, tests, max_points):
    """{test: how many students earned its full points}, in notebook order."""
    return {test: sum(1 for *_, per_test in rows
                      if per_test.get(test, 0) >= max_points[test]) for test in tests}


def write_pass_chart(rows, tests, max_points, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from coursekit.feedback import test_name

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
    from coursekit.intake import SubmissionProblem, read_submission

    notebooks = []
    for path in sorted((root / "submitted").glob("*/%s/%s" % (assignment, NOTEBOOK))):
        try:
            notebooks.append(read_submission(str(path)))
        except SubmissionProblem:  # the grade table already says what is wrong with it
            continue
    return notebooks


def write_prediction_chart(notebooks, path):
    """How the class predicted before each run (coursekit.predictions), one bar per
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


def table(rows, problem_of=None):
    problem_of = problem_of or {}
    width = max([len("student")] + [len(r[0]) for r in rows])
    lines = ["%-*s  %6s" % (width, "student", "points")]
    for student, score, max_score, _ in rows:
        line = "%-*s  %6s" % (width, student, "%g/%g" % (score, max_score))
        if student in problem_of:
            line += "  NEEDS ATTENTION: " + problem_of[student]
        lines.append(line)
    return "\n".join(lines)


def main(root=ROOT):
    rows, tests, max_points = collect(gradebook_url(root))
    if not rows:
        print("No graded submissions in the gradebook: run `make autograde` first.")
        return 1
    attention = problems(root)
    # Graded, but flagged by the judge: the instructor should look.
    for student, sentence in tampered(root).items():
        attention[student] = "; ".join(filter(None, (attention.get(student), sentence)))
    # Graded, but with edits the grader put back: the instructor may want to look.
    noted = dict(put_back(root), **attention)
    write_csv(rows, tests, root / "grades.csv", noted)
    write_pass_chart(rows, tests, max_points, root / "grades.png")
    write_prediction_chart(submitted_notebooks(root), root / "predictions.png")
    print(table(rows, noted))
    by_hand = awaiting_hand_grading(gradebook_url(root))
    if by_hand:
        print("\n%d of %d submissions have a written answer to grade by hand (the "
              "formgrader: Manual Grading); their totals do not include it yet."
              % (len(by_hand), len(rows)))
    print("\nPer-test points for each student: grades.csv; "
          "how many passed each test: grades.png; how the class predicted: predictions.png")
    return 1 if attention else 0


if __name__ == "__main__":
    sys.exit(main())
