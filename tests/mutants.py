"""Deliberate bugs the test suite must catch (`make mutants`).

Each mutant is a one-line bug in one place: its file, the exact text it replaces (found
exactly once, or the run stops before testing anything), the text put there, and the tests
that must each fail on it. The bugs are applied one at a time in a scratch copy of this
checkout (the working tree is never touched), after the same tests have passed there on
the unchanged copy. A table says which bug each test caught, and the exit status is
non-zero if any bug survives, or if an anchor text is gone: a file it names was rewritten,
and the mutant must be written again for the new text.

    .venv/bin/python tests/mutants.py                 # every mutant
    .venv/bin/python tests/mutants.py folders export  # only these (by name)
"""
import dataclasses
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# Longest any one pytest run may take: the exchange's round trip takes about 2 minutes.
TIMEOUT = 1200


@dataclasses.dataclass(frozen=True)
class Mutant:
    name: str
    path: str          # relative to the checkout
    original: str      # must occur exactly once in the file
    replacement: str
    tests: tuple       # pytest node ids; each must fail on the mutant and pass without it
    why: str           # the bug, in words


MUTANTS = (
    Mutant("judge", "coursekit/kernel/judge.py",
           "allowed = expected.abs().mul_(1e-3).add_(1e-3)",
           "allowed = expected.abs().mul_(1.0).add_(1e-3)",
           ("tests/test_judge.py::test_a_record_that_does_not_add_up_passes_nothing"
            "[linear_output]",
            "tests/test_judge.py::test_a_record_that_does_not_add_up_passes_nothing"
            "[batchnorm_output]"),
           "the judge accepts a layer's output scaled by up to 2x"),
    Mutant("folders", "coursekit/grading/folders.py",
           "fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)",
           "fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)",
           ("tests/test_folders.py::test_a_small_file_is_read_only_when_plain",),
           "read_plain_file follows a link"),
    Mutant("output_cap", "coursekit/grading/outputcaps.py",
           "room = max(0, min(self.max_cell_output_bytes - cell.kept,",
           "room = max(0, min(10 * self.max_cell_output_bytes - cell.kept,",
           ("tests/test_output_caps.py::test_a_huge_line_is_cut_with_a_note_and_quickly",),
           "a cell keeps ten times the output its cap allows"),
    Mutant("intake", "coursekit/grading/intake.py",
           "if size > MAX_NOTEBOOK_BYTES:",
           "if size > 1.1 * MAX_NOTEBOOK_BYTES:",
           ("tests/test_intake.py::test_a_huge_file_is_refused_before_it_is_read"
            "[21000000]",),
           "intake accepts a 21 MB notebook (the limit is 20 MB)"),
    Mutant("sandbox", "coursekit/grading/sandbox.py",
           '"--unshare-ipc", "--unshare-pid", "--unshare-net",',
           '"--unshare-ipc", "--unshare-pid",',
           ("tests/test_safe_grading.py::test_the_sandbox_cuts_the_network_even_loopback",),
           "the sandbox leaves the kernel the grader's network"),
    Mutant("testcells", "coursekit/kernel/testcells.py",
           'TestCell("test_registered", 1,',
           'TestCell("test_registered", 2,',
           ("tests/test_release.py::test_generated_cells_are_in_step_with_the_package",
            "tests/test_points.py::test_the_documents_quote_the_points_of_the_table"),
           "a verdict is worth a point more than the notebook and the documents say"),
    Mutant("feedback_script", "coursekit/grading/sanitize.py",
           "if mimetype in self.passive_output_types:",
           'if mimetype in self.passive_output_types | {"application/javascript"}:',
           ("tests/test_inert_html.py::"
            "test_the_preprocessor_drops_active_outputs_and_unquoted_metadata",),
           "a feedback page keeps a script the student's code displayed"),
    Mutant("collect", "coursekit/classroom/exchange.py",
           "if owner != student:",
           "if owner is None:",
           ("tests/test_folders.py::"
            "test_collect_refuses_a_submission_another_user_made_in_a_students_name",
            "tests/test_instructor_walk.py::"
            "test_collect_sets_aside_what_a_student_could_not_have_handed_in"),
           "collect takes a submission another user made in a student's name"),
    Mutant("export", "coursekit/escape.py",
           """return "'" + text if text.startswith(FORMULA_START) else text""",
           "return text",
           ("tests/test_export.py::test_no_spreadsheet_formula_reaches_the_file",),
           "the export writes a formula a spreadsheet runs"),
    Mutant("similarity", "coursekit/classroom/similarity.py",
           "linked = foreign_entries(str(folder))",
           "linked = []",
           ("tests/test_similarity.py::test_a_submission_holding_a_link_is_named_and_not_read",),
           "similarity reads a submission through a link"),
    Mutant("attention", "coursekit/grading/attention.py",
           "record_path(root, assignment, student).unlink()",
           "record_path(root, assignment, student).exists()",
           ("tests/test_attention.py::test_a_record_is_one_sentence_replaced_whole_and_cleared",
            "tests/test_attention.py::test_grading_that_finds_nothing_clears_the_record"),
           "'needs attention' stays after a clean grading"),
    Mutant("report_late", "coursekit/classroom/report.py",
           "return max(0, math.ceil(seconds_late or 0))",
           "return max(0, round(seconds_late or 0))",
           ("tests/test_report.py::"
            "test_lateness_is_to_the_second_rounded_up_and_names_a_penalty",),
           "lateness rounded to the nearest second: 0.2 s late reads as on time"),
)


@dataclasses.dataclass
class Outcome:
    mutant: Mutant
    failed: set
    seconds: float
    error: str = ""

    @property
    def caught(self):
        return not self.error and self.failed >= set(self.mutant.tests)


class AnchorMissing(Exception):
    pass


def anchor_problems(root, mutants):
    """One line per mutant whose text is not found exactly once in its file."""
    problems = []
    for mutant in mutants:
        path = root / mutant.path
        count = path.read_text().count(mutant.original) if path.exists() else -1
        if count != 1:
            problems.append("%s: %s %s" % (
                mutant.name, mutant.path,
                "is gone" if count < 0 else "holds %r %d times (must be once)"
                % (mutant.original, count)))
    return problems


def scratch_copy(top):
    """This checkout as it is now (uncommitted edits included), without git or caches."""
    copy = Path(top) / "checkout"
    shutil.copytree(ROOT, copy, symlinks=True, ignore=shutil.ignore_patterns(
        ".git", ".venv", "__pycache__", ".pytest_cache", "artifacts"))
    os.symlink((ROOT / ".venv").resolve(), copy / ".venv")
    return copy


def run_tests(copy, tests):
    """(node ids that failed or errored, an error if pytest itself could not run them)."""
    try:
        result = subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-rfE", "-p", "no:cacheprovider",
             *tests], cwd=copy, capture_output=True, text=True, timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        return set(), "pytest ran over %d s" % TIMEOUT
    failed = set(re.findall(r"^(?:FAILED|ERROR) (\S+)", result.stdout, re.MULTILINE))
    if result.returncode not in (0, 1) or (result.returncode == 1 and not failed):
        # 4: a node id not found; 5: nothing collected; anything else: pytest broke.
        return failed, "pytest exit %d: %s" % (result.returncode,
                                               (result.stdout + result.stderr)[-1500:])
    return failed, ""


def main(names):
    mutants = [m for m in MUTANTS if not names or m.name in names]
    unknown = set(names) - {m.name for m in MUTANTS}
    if unknown:
        sys.exit("No mutant named %s; there are: %s" % (
            ", ".join(sorted(unknown)), ", ".join(m.name for m in MUTANTS)))
    problems = anchor_problems(ROOT, mutants)
    if problems:
        sys.exit("Anchor text not found; rewrite these mutants in tests/mutants.py for the "
                 "new code:\n  " + "\n  ".join(problems))
    with tempfile.TemporaryDirectory(prefix="mutants-") as top:
        copy = scratch_copy(top)
        tests = sorted({test for m in mutants for test in m.tests})
        started = time.monotonic()
        failed, error = run_tests(copy, tests)
        print("without a bug: %d tests, %.0f s" % (len(tests), time.monotonic() - started))
        if failed or error:
            sys.exit("These tests fail with no bug applied, so they prove nothing about the "
                     "mutants:\n  %s%s" % ("\n  ".join(sorted(failed)), error and "\n" + error))
        outcomes = []
        for mutant in mutants:
            path = copy / mutant.path
            text = path.read_text()
            path.write_text(text.replace(mutant.original, mutant.replacement))
            started = time.monotonic()
            try:
                failed, error = run_tests(copy, mutant.tests)
            finally:
                path.write_text(text)
            outcome = Outcome(mutant, failed, time.monotonic() - started, error)
            outcomes.append(outcome)
            print("%-16s %-6s %4.0f s  %s" % (mutant.name, "caught" if outcome.caught
                                              else "SURVIVED", outcome.seconds, mutant.why),
                  flush=True)
    print()
    print(table(outcomes))
    survivors = [o for o in outcomes if not o.caught]
    for outcome in survivors:
        missed = sorted(set(outcome.mutant.tests) - outcome.failed)
        print("\n%s survived: %s\n  still passing: %s%s" % (
            outcome.mutant.name, outcome.mutant.why, ", ".join(missed),
            outcome.error and "\n  " + outcome.error))
    return 1 if survivors else 0


def table(outcomes):
    width = max(len(o.mutant.name) for o in outcomes)
    lines = ["%-*s  %-6s  %7s  %s" % (width, "bug", "caught", "seconds", "failing tests")]
    for o in outcomes:
        lines.append("%-*s  %-6s  %7.0f  %d of %d" % (
            width, o.mutant.name, "yes" if o.caught else "NO", o.seconds,
            len(o.failed & set(o.mutant.tests)), len(o.mutant.tests)))
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
