"""The grade table: ``grades.csv`` and a short summary, read from the gradebook.

One row per student: total points, then the points of every test cell, so an instructor
sees at a glance which checks a class fails. ``python -m coursekit.report``.
"""
import csv
import sys
import warnings

from coursekit.sync import ASSIGNMENT, NOTEBOOK, ROOT


def gradebook_url(root=ROOT):
    return "sqlite:///%s" % (root / "gradebook.db")


def collect(url, assignment=ASSIGNMENT):
    """[(student, score, max_score, {test name: score})] sorted by student, and test names."""
    from nbgrader.api import Gradebook

    rows, tests = [], []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # SQLAlchemy's SAWarnings say nothing to an instructor
        with Gradebook(url) as gradebook:
            for submission in gradebook.assignment_submissions(assignment):
                per_test = {}
                for notebook in submission.notebooks:
                    for grade in notebook.grades:
                        if grade.cell.cell_type == "code" and grade.auto_score is not None:
                            per_test[grade.name] = grade.score
                            if grade.name not in tests:
                                tests.append(grade.name)
                rows.append((submission.student_id, submission.score, submission.max_score,
                             per_test))
    return sorted(rows), tests


def problems(root=ROOT, assignment=ASSIGNMENT):
    """{student: why their submission was not graded}, for every submission folder."""
    from coursekit.autograde import problem_of, release_notebooks
    from nbgrader.coursedir import CourseDirectory

    releases = release_notebooks(CourseDirectory(root=str(root)), assignment)
    found = {}
    for folder in sorted((root / "submitted").glob("*/" + assignment)):
        student = folder.parent.name
        problem = problem_of(str(folder), releases)
        if problem:
            found[student] = problem.split(": ", 1)[1]
        elif not (root / "autograded" / student / assignment / NOTEBOOK).exists():
            found[student] = "not graded: see the autograde log"
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
    rows, tests = collect(gradebook_url(root))
    if not rows:
        print("No graded submissions in the gradebook: run `make autograde` first.")
        return 1
    attention = problems(root)
    write_csv(rows, tests, root / "grades.csv", attention)
    print(table(rows, attention))
    print("\nPer-test points for each student: grades.csv")
    return 1 if attention else 0


if __name__ == "__main__":
    sys.exit(main())
