"""Safe grading (issue 4): hostile and broken submissions through real `nbgrader autograde`.

One course copy holds an honest reference and one student per case of tests/hostile.py.
It is autograded twice with the course's config, sandbox on, as an instructor would
(tests/graded_classes.py, once per run): the tests then check what each case earned, what
it could touch, and that nothing was lost.
"""
import csv
from pathlib import Path
import shutil
import os
import subprocess
import sys

import nbformat
import pytest

import hostile
from conftest import checksums, graded_ahead, nbgrader
from coursekit.course import ASSIGNMENT, NOTEBOOK, SOURCE_NOTEBOOK, grade_id
from coursekit.grading.attention import of_class as needs_attention
from coursekit.grading.feedback import RELEASE_FILES
from coursekit.examples.samples import course_copy, nbgrader_env, submission_path
from graded_classes import Listener, grades_of, protected_state
from test_grading import NETWORK_TESTS, points

@pytest.fixture(scope="module")
def graded(graded_classes):
    return graded_classes.hostile


def outputs(graded, student):
    notebook = nbformat.read(graded["root"] / "autograded" / student / ASSIGNMENT / NOTEBOOK,
                             as_version=4)
    return [(grade_id(cell), " ".join(o.get("text", "") + o.get("ename", "") + " "
                                      + o.get("evalue", "") for o in cell.get("outputs", [])))
            for cell in notebook.cells if cell.cell_type == "code"]


def output_of_cell_containing(graded, student, fragment):
    notebook = nbformat.read(graded["root"] / "autograded" / student / ASSIGNMENT / NOTEBOOK,
                             as_version=4)
    cell = next(c for c in notebook.cells if fragment in c.source)
    return " ".join(o.get("text", "") + o.get("ename", "") + " " + o.get("evalue", "")
                    for o in cell.outputs)


def total(graded, student):
    return sum(graded["grades"][student].values())


def assert_full_marks(graded, student):
    """`student` earned every point; if not, the cells that failed say why."""
    failed = ["%s: %s" % (cell, text.strip()[:300]) for cell, text in outputs(graded, student)
              if "Error" in text or "CellNotRun" in text or "KernelStopped" in text]
    assert total(graded, student) == FULL, "\n".join(
        ["%s earned %g of %g" % (student, total(graded, student), FULL)] + failed)


FULL = sum(points().values())
WRITTEN = sum(cell.metadata.nbgrader["points"] for cell in nbformat.read(
    SOURCE_NOTEBOOK, as_version=4).cells
    if cell.cell_type == "markdown" and cell.metadata.nbgrader.get("grade"))


def test_the_honest_student_is_graded_in_full(graded):
    assert_full_marks(graded, "zz_reference")


def test_the_exit_status_says_something_needs_attention(graded):
    assert graded["first"].returncode != 0
    assert graded["second"].returncode != 0


def test_every_readable_submission_is_graded(graded):
    readable = set(hostile.CASES) - set(hostile.BROKEN)
    for student in readable:
        assert (graded["root"] / "autograded" / student / ASSIGNMENT / NOTEBOOK).exists(), student
        assert set(graded["grades"][student]) == set(points()), student


@pytest.mark.parametrize("student", sorted(hostile.BROKEN))
def test_a_broken_file_is_named_in_the_log_and_the_grade_table(graded, student):
    log = graded["first"].stderr
    line = next((line for line in log.splitlines() if line.strip().startswith(student + ":")),
                None)
    assert line and hostile.BROKEN[student] in line, log[-3000:]
    assert "submitted/%s/%s" % (student, ASSIGNMENT) in line
    assert hostile.BROKEN[student] in needs_attention(graded["root"])[student]
    assert total(graded, student) == 0


def test_broken_files_produce_no_traceback(graded):
    assert "Traceback" not in graded["first"].stderr


def test_student_code_cannot_use_the_instructors_solution(graded):
    scores = graded["grades"]["cheat"]
    assert sum(scores[t] for t in NETWORK_TESTS) == 0
    assert "found []" in output_of_cell_containing(graded, "cheat", "glob.glob")


def test_student_code_cannot_write_outside_its_own_folder(graded):
    root = graded["root"]
    written = output_of_cell_containing(graded, "cheat", "scratch = [").splitlines()
    assert sum(line.startswith("blocked ../") for line in written) == 6, written
    scratch = [line.split()[1] for line in written if line.startswith("wrote")]
    assert len(scratch) == 2 and all(line.startswith("wrote /tmp/") for line in written
                                     if line.startswith("wrote")), written
    assert not any(Path(path).exists() for path in scratch), "scratch space outlived the kernel"
    for name in ("submitted", "source", "release"):
        assert checksums(root / name) == graded["fixed"][name], name
    planted = [path for path in root.rglob("*") if path.is_file()
               and hostile.MARK.encode() in path.read_bytes()]
    # Only its own autograded folder holds the mark (feedback folders get the pages and
    # nothing else), besides the notebooks and pages that quote its code.
    own = "%s-own-folder.txt" % hostile.MARK
    assert {p for p in planted if p.suffix not in (".ipynb", ".html")} == {
        root / "autograded" / "cheat" / ASSIGNMENT / own}


def test_student_code_has_no_network_not_even_loopback(graded):
    assert graded["listener"].contacts == []
    assert "no network" in output_of_cell_containing(graded, "network", "create_connection")
    assert_full_marks(graded, "network")


def run_in_sandbox(tmp_path, code, *args, also_read_only=()):
    """Python `code` run by the sandbox's own command, with no kernel: a fraction of a
    second."""
    from coursekit.grading.sandbox import Sandbox

    (tmp_path / "work").mkdir()
    (tmp_path / "home").mkdir()
    command = Sandbox().command([sys.executable, "-c", code, *args], str(tmp_path / "work"),
                                str(tmp_path / "home"), also_read_only=also_read_only)
    return subprocess.run(command, capture_output=True, text=True, timeout=60)


def test_the_sandbox_cuts_the_network_even_loopback(tmp_path):
    """What the graded case above shows, without a kernel (make mutants runs it without
    --unshare-net)."""
    listener = Listener()
    ran = run_in_sandbox(tmp_path, hostile.CALL_HOME.replace("PORT", str(listener.port)))
    listener.server.close()
    assert "no network" in ran.stdout, ran.stdout + ran.stderr
    assert listener.contacts == []


def test_the_sandbox_shows_the_graders_checks_and_lets_nothing_change_them(tmp_path):
    """The folder the grader's requests load the checks from is mounted read-only: a
    notebook can read it, and cannot write, remove, rename or chmod it."""
    from coursekit.grading import grader

    path, _ = grader.checks_file()
    code = ("import os, sys\n"
            "path = sys.argv[1]\n"
            "print('read', len(open(path, 'rb').read()))\n"
            "for change in (lambda: open(path, 'ab'), lambda: os.remove(path),\n"
            "               lambda: os.rename(path, path + '.x'), lambda: os.chmod(path, 0o666),\n"
            "               lambda: open(os.path.join(os.path.dirname(path), 'new'), 'w')):\n"
            "    try:\n"
            "        change()\n"
            "        print('changed')\n"
            "    except OSError:\n"
            "        print('refused')\n")
    ran = run_in_sandbox(tmp_path, code, path, also_read_only=[os.path.dirname(path)])
    assert ran.stdout.split("\n")[:6] == ["read %d" % os.path.getsize(path)] + ["refused"] * 5, (
        ran.stdout + ran.stderr)


def test_a_memory_bomb_hits_the_cap_and_costs_only_its_cell(graded):
    assert "MemoryError" in output_of_cell_containing(graded, "memory_bomb", "def hog")
    assert_full_marks(graded, "memory_bomb")


def test_memory_held_by_an_error_the_failure_was_raised_from_is_released_too():
    """`except MemoryError: raise ValueError(...)`: the frames holding the memory are only
    in the MemoryError's traceback, the ValueError's context."""
    from jupyter_client.manager import start_new_kernel

    from coursekit.grading.grader import RELEASE_FAILED_CELL

    manager, client = start_new_kernel(kernel_name="python3")
    printed = []

    def run(code):
        client.execute_interactive(code, timeout=120, output_hook=lambda message: printed.append(
            message["content"].get("text", "")) if message["msg_type"] == "stream" else None)

    try:
        run("import os, resource\n"
            "def resident():\n"
            "    print(int(open('/proc/self/statm').read().split()[1]) * os.sysconf('SC_PAGE_SIZE'))\n"
            "size = int(open('/proc/self/statm').read().split()[0]) * os.sysconf('SC_PAGE_SIZE')\n"
            "resource.setrlimit(resource.RLIMIT_AS, (size + 2**31, size + 2**31))\n")
        run("def fill():\n    blocks = []\n    while True:\n        blocks.append(bytearray(2**26))\n"
            "try:\n    fill()\nexcept MemoryError:\n    raise ValueError('no room')\n")
        run("resident()")
        run(RELEASE_FAILED_CELL)
        run("resident()")
    finally:
        manager.shutdown_kernel(now=True)
    before, after = [int(text) for text in printed]
    assert before - after > 2**30, (before, after)


def test_a_process_bomb_hits_the_cap_and_costs_only_its_cell(graded):
    text = output_of_cell_containing(graded, "process_bomb", "os.fork()")
    assert "BlockingIOError" in text or "Resource temporarily unavailable" in text, text
    assert_full_marks(graded, "process_bomb")


def test_an_endless_loop_is_interrupted_and_the_rest_runs(graded):
    assert "KeyboardInterrupt" in output_of_cell_containing(graded, "endless_loop",
                                                            "while True:\n    pass")
    assert_full_marks(graded, "endless_loop")


def test_a_loop_that_swallows_interrupts_is_stopped_and_graded_on_what_ran(graded):
    scores = graded["grades"]["stubborn_loop"]
    ran_before = set(hostile.checks_up_to("test_placement"))
    assert {"test_train_eval", "test_placement"} <= set(scores)
    assert {t for t, s in scores.items() if s == points()[t]} == ran_before
    assert sum(scores[t] for t in set(scores) - ran_before) == 0
    assert "KernelStopped" in output_of_cell_containing(graded, "stubborn_loop",
                                                        "except KeyboardInterrupt")
    not_run = dict(outputs(graded, "stubborn_loop"))["test_train_eval"]
    assert "CellNotRun" in not_run
    feedback = graded["root"] / "feedback" / "stubborn_loop" / ASSIGNMENT
    assert (feedback / NOTEBOOK.replace(".ipynb", ".html")).exists()


@pytest.mark.parametrize("student", ["edited_tests", "stripped_and_tampered"])
def test_edited_checks_are_restored_before_grading(graded, student):
    assert total(graded, student) == 0


def test_deleted_checks_are_put_back_and_graded(graded):
    assert graded["grades"]["deleted_tests"] == points()
    present = [cell_id for cell_id, _ in outputs(graded, "deleted_tests")]
    assert all(test in present for test in hostile.DELETED_TESTS)


def test_stripped_metadata_is_restored_and_graded_in_full(graded):
    assert graded["grades"]["stripped_metadata"] == points()


def test_the_grade_table_flags_every_broken_file(graded, capsys):
    from coursekit.classroom.report import main

    assert main(graded["root"]) == 1
    table = capsys.readouterr().out
    for student, says in hostile.BROKEN.items():
        line = next(line for line in table.splitlines() if line.startswith(student + " "))
        # Out of every point of the assignment, the written answer's included.
        assert "0/%g " % (FULL + WRITTEN) in line and "NEEDS ATTENTION" in line and says in line
    with open(graded["root"] / "grades.csv") as handle:
        flagged = {row["student"] for row in csv.DictReader(handle) if row["problem"]}
    # Besides, graded students whose fixed cells the grader put back (issue 14), those
    # whose code the judge saw tamper (issue 12), and those whose grade cells grading
    # repaired (issue 24).
    assert flagged == (set(hostile.BROKEN) | set(hostile.FIXED_CELLS) | set(hostile.TAMPERING)
                       | set(hostile.MALFORMED))


def test_the_table_says_what_the_autograder_recorded_and_nothing_else(graded, capsys):
    from coursekit.grading import attention
    from coursekit.classroom.report import main

    main(graded["root"])
    capsys.readouterr()
    recorded = {student: attention.read(graded["root"], ASSIGNMENT, student)
                for student in hostile.CASES}
    recorded = {student: why for student, why in recorded.items() if why}
    assert set(recorded) == set(hostile.BROKEN) | set(hostile.TAMPERING) | set(hostile.MALFORMED)
    with open(graded["root"] / "grades.csv") as handle:
        said = {row["student"]: row["problem"] for row in csv.DictReader(handle)}
    assert {student: said[student] for student in recorded} == recorded


def test_submitted_is_never_modified(graded):
    assert checksums(graded["root"] / "submitted") == graded["fixed"]["submitted"]


def test_grading_again_gives_the_same_grades(graded):
    regraded = set(graded["grades"]) & hostile.GRADED_TWICE
    assert regraded >= hostile.GRADED_TWICE - set(hostile.BROKEN)
    assert {s: graded["regrades"][s] for s in regraded} == {
        s: graded["grades"][s] for s in regraded}


def test_links_left_by_student_code_are_removed_unfollowed_and_logged(graded):
    folder = graded["root"] / "autograded" / "leave_links" / ASSIGNMENT
    assert "left [" in output_of_cell_containing(graded, "leave_links", "os.symlink")
    left = [path for path in folder.rglob("*") if path.is_symlink() or not (
        path.is_file() or path.is_dir())]
    assert left == []
    log = graded["first"].stderr
    line = next(line for line in log.splitlines() if "leave_links: removed" in line)
    assert "leak.html (a link to ../../../source/" in line
    assert_full_marks(graded, "leave_links")


@pytest.mark.parametrize("student", ["link_to_submission", "link_to_gradebook",
                                     "link_to_config"])
def test_a_link_over_the_notebook_writes_nothing_through_it(graded, student):
    assert "replaced" in output_of_cell_containing(graded, student, "os.symlink")
    graded_notebook = graded["root"] / "autograded" / student / ASSIGNMENT / NOTEBOOK
    assert graded_notebook.is_file() and not graded_notebook.is_symlink()
    assert "%s: removed" % student in graded["first"].stderr
    assert_full_marks(graded, student)


def test_nothing_a_link_leads_to_is_changed_or_handed_out(graded):
    root = graded["root"]
    assert protected_state(root) == graded["fixed"]["protected"]
    assert checksums(root / "submitted") == graded["fixed"]["submitted"]
    # Every grade survived the links to the gradebook, and the config still loads.
    assert_full_marks(graded, "zz_reference")
    assert graded["regrades"]["zz_reference"] == graded["grades"]["zz_reference"]
    secret = Path(hostile.ROOT_ONLY).read_bytes()
    for path in (root / "feedback").rglob("*"):
        assert not path.is_symlink(), path
        if path.is_file():
            assert path.suffix == ".html" or path.name in RELEASE_FILES, \
                "feedback holds more than its pages: %s" % path
            assert secret not in path.read_bytes(), path


def test_a_submission_holding_a_link_is_not_read(graded):
    assert not (graded["root"] / "autograded" / "submitted_link" / ASSIGNMENT).exists()
    assert "holds a link" in needs_attention(graded["root"])["submitted_link"]


def test_a_big_sparse_file_stops_at_the_file_size_cap(graded):
    assert "File too large" in output_of_cell_containing(graded, "sparse_file", "handle.seek")
    assert_full_marks(graded, "sparse_file")
    for path in (graded["root"] / "autograded" / "sparse_file").rglob("*"):
        assert not path.is_file() or path.stat().st_size <= 256 * 2**20, path


def test_tmp_counts_toward_the_memory_of_the_whole_submission(graded):
    text = output_of_cell_containing(graded, "tmp_bomb", "/tmp/fill")
    assert "more than 4 GiB of memory together" in text or "No space left" in text, text
    assert "wrote" not in text


def test_student_code_cannot_make_a_user_namespace(graded):
    # EPERM (1) from the sandbox's seccomp filter: no root of its own, not even nominally.
    assert "unshare: -1 1" in output_of_cell_containing(graded, "user_namespace", "unshare")
    assert_full_marks(graded, "user_namespace")


def test_children_share_one_memory_allowance(graded):
    text = output_of_cell_containing(graded, "children_memory", "os.fork()")
    assert "status 9" in text or "more than 4 GiB of memory together" in text, text


@pytest.fixture(scope="module")
def one_student(tmp_path_factory):
    root = course_copy(tmp_path_factory.mktemp("one_student"))
    nbgrader(root, "generate_assignment", ASSIGNMENT, "--force")
    nbformat.write(hostile.reference(), _path(root, "zz_reference"))
    return root


def _path(root, student):
    path = submission_path(root, student)
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def test_without_bubblewrap_autograding_refuses_and_says_how_to_install_it(one_student):
    run = nbgrader(one_student, "autograde", ASSIGNMENT, "--force",
                   "--Sandbox.bwrap=/nonexistent/bwrap", check=False)
    assert run.returncode != 0
    assert "apt-get install bubblewrap" in run.stderr
    assert "--Sandbox.unsafe_run_without_sandbox=True" in run.stderr
    assert not (one_student / "autograded").exists()


def test_the_unsafe_opt_out_grades_without_a_sandbox_and_says_so_loudly(one_student):
    run = nbgrader(one_student, "autograde", ASSIGNMENT, "--force",
                   "--Sandbox.bwrap=/nonexistent/bwrap",
                   "--Sandbox.unsafe_run_without_sandbox=True", check=False)
    assert run.returncode == 0, run.stderr[-3000:]
    assert "UNSAFE" in run.stderr
    assert sum(grades_of(one_student)["zz_reference"].values()) == FULL


# Budgets of a whole submission, tight enough for a quick test; each case passes one. The
# class grades beside other tests (graded_ahead), so no budget may get in another's way:
# each case is graded with its own budget this tight and the others as the course sets them.
LIMITS = {"cpu_seconds": 12, "notebook_seconds": 30, "disk_mib": 256}
OVER_BUDGET = {  # student: (the hostile cell, the budget it passes, what the grader says)
    "limit_cpu_hog": (hostile.CPU_HOG, "cpu_seconds", "more than 12 CPU seconds in all"),
    "limit_busy_children": (hostile.BUSY_CHILDREN, "cpu_seconds",
                            "more than 12 CPU seconds in all"),
    "limit_slow_cells": (hostile.SLOW_CELL.replace("SECONDS", "8"), "notebook_seconds",
                         "time budget of 30 s (all cells together)"),
    "limit_disk_filler": (hostile.DISK_FILLER, "disk_mib", "more than 256 MiB into its folder"),
    "limit_home_filler": (hostile.HOME_FILLER, "disk_mib",
                          "more than 256 MiB into its folder and home"),
}


@graded_ahead
def over_budget(tmp_path_factory):
    """(the course, {student: nbgrader's run}): each OVER_BUDGET student graded with its own
    budget at LIMITS."""
    root = course_copy(tmp_path_factory.mktemp("over_budget"))
    nbgrader(root, "generate_assignment", ASSIGNMENT, "--force")
    for student, (source, _, _) in OVER_BUDGET.items():
        notebook = hostile.reference()
        for _ in range(4 if "slow" in student else 1):
            hostile._insert_after(notebook, "imports", source)
        nbformat.write(notebook, _path(root, student))
    runs = {}
    for budget in sorted({budget for _, budget, _ in OVER_BUDGET.values()}):
        students = [s for s, (_, passed, _) in OVER_BUDGET.items() if passed == budget]
        others = sorted(set(OVER_BUDGET) - set(students))
        run = nbgrader(root, "autograde", ASSIGNMENT, "--force", "--Execute.timeout=60",
                       "--CourseDirectory.student_id_exclude=" + ",".join(others),
                       "--Sandbox.%s=%d" % (budget, LIMITS[budget]), check=False)
        assert run.returncode == 0, run.stderr[-3000:]
        runs.update(dict.fromkeys(students, run))
    return root, runs


@pytest.mark.parametrize("student", sorted(OVER_BUDGET))
def test_a_submission_past_a_budget_is_stopped_and_graded_on_what_ran(over_budget, student):
    root, runs = over_budget
    run = runs[student]
    _, _, says = OVER_BUDGET[student]
    notebook = nbformat.read(root / "autograded" / student / ASSIGNMENT / NOTEBOOK,
                             as_version=4)
    stopped = [o.evalue for cell in notebook.cells if cell.cell_type == "code"
               for o in cell.outputs if o.output_type == "error" and o.ename == "KernelStopped"]
    assert len(stopped) == 1 and says in stopped[0], stopped
    assert says in run.stderr
    assert sum(grades_of(root)[student].values()) == 0
    assert not [p for p in (root / "autograded" / student).rglob("*")
                if p.is_file() and p.stat().st_size > 256 * 2**20]

BROKEN_CONFIGS = {
    "raises": 'raise RuntimeError("a half-edited config")\n',
    "installs_nothing": "c = get_config()\nc.CourseDirectory.course_id = 'udl-11-3'\n",
    "unsandboxed_execute": (
        "from nbgrader.converters.autograde import Autograde\n"
        "exec(open('good_config.py').read())\n"
        "c.Autograde.autograde_preprocessors = "
        "Autograde.class_traits()['autograde_preprocessors'].default()\n"),
}


@pytest.mark.parametrize("config", sorted(BROKEN_CONFIGS))
def test_a_config_that_does_not_install_the_sandbox_stops_autograding(one_student,
                                                                     tmp_path, config):
    root = tmp_path / "course"
    shutil.copytree(one_student, root, ignore=shutil.ignore_patterns("autograded",
                                                                     "feedback"))
    (root / "good_config.py").write_text((root / "nbgrader_config.py").read_text())
    (root / "nbgrader_config.py").write_text(BROKEN_CONFIGS[config])
    plain = nbgrader(root, "autograde", ASSIGNMENT, "--force", check=False)
    assert plain.returncode != 0
    assert "Refusing to autograde" in plain.stderr, plain.stderr[-3000:]
    parallel = subprocess.run(
        [sys.executable, "-m", "coursekit.grading.parallel", ASSIGNMENT, "--root", str(root)],
        cwd=root, env=nbgrader_env(), capture_output=True, text=True)
    assert parallel.returncode != 0
    refusal = [line for line in (parallel.stdout + parallel.stderr).splitlines()
               if line.startswith("Refusing to autograde")]
    assert len(refusal) == 1 and "Traceback" not in parallel.stderr, parallel.stderr[-3000:]
    assert not (root / "autograded").exists()


def _autograded(graded, student):
    return graded["root"] / "autograded" / student / ASSIGNMENT / NOTEBOOK


def test_a_huge_line_is_cut_with_a_note_fast_and_costs_no_points(graded):
    printed = len(str(list(range(1_000_000)))) + 1
    text = output_of_cell_containing(graded, "huge_line", "print(list(range(1_000_000)))")
    assert text.startswith("[0, 1, 2, 3, ")
    assert ("\n[output cut: this cell's output came to %.1f MB; grading keeps 1 MB of it]\n"
            % (printed / 1e6)) in text[-200:], text[-300:]
    # Measured by the student's kernel from the print to the next cell. It was 116 s for a
    # line of 0.4 MB when nbclient merged the output; this one is 20 times longer.
    took = output_of_cell_containing(graded, "huge_line", "the grader took")
    assert float(took.split("took ")[1].split(" s")[0]) < 10, took
    noisy = dict(outputs(graded, "huge_line"))["compare_slope"]
    # compare_slope calls predicted_increment twice (its printout and the recalled guess).
    assert "[output cut: this cell's output came to 6 MB; grading keeps 1 MB of it]" in noisy
    assert _autograded(graded, "huge_line").stat().st_size < 2.6e6
    assert_full_marks(graded, "huge_line")


def test_a_flood_of_output_stops_at_the_notebook_cap_and_costs_no_points(graded):
    notebook = nbformat.read(_autograded(graded, "flood"), as_version=4)
    image = next(c for c in notebook.cells if c.source == hostile.HUGE_IMAGE)
    assert [o.text for o in image.outputs] == [
        "[output cut: this notebook's output passed the 5 MB grading keeps; this cell's came "
        "to 4 MB, and none of it is kept]\n"]
    # 618 KB a cell: eight fit in the 5 MB of a notebook, the ninth is cut (nbgrader then
    # shows each cell's first 1000 lines).
    flooded = [c.outputs[0].text for c in notebook.cells if c.source == hostile.FLOOD_LINES]
    assert ["[output cut: " in text for text in flooded] == [False] * 8 + [True] * 4
    assert "this notebook's output passed the 5 MB grading keeps" in flooded[8]
    assert _autograded(graded, "flood").stat().st_size < 6e6
    assert_full_marks(graded, "flood")


@pytest.mark.parametrize("student", ["long_varied_cells", "version_3"])
def test_an_odd_but_honest_file_is_read_matched_and_graded_in_full(graded, student):
    assert graded["grades"][student] == points()


# Issue 14, items 4 and 5: deleted checks, any number, come back in place and are graded;
# edits to fixed cells are put back, and the student, the log and the grade table say so.

@pytest.mark.parametrize("student", ["deleted_all_tests", "deleted_consecutive_tests",
                                     "deleted_tests"])
def test_any_number_of_deleted_checks_is_put_back_in_place_and_graded(graded, student):
    assert graded["grades"][student] == points()
    present = [cell_id for cell_id, _ in outputs(graded, student)]
    assert [cell_id for cell_id in present if cell_id in hostile.ALL_TESTS] == list(
        hostile.ALL_TESTS)
    release = nbformat.read(graded["root"] / "release" / ASSIGNMENT / NOTEBOOK, as_version=4)
    assert present == [grade_id(c) for c in release.cells if c.cell_type == "code"]
    assert "KeyError" not in graded["first"].stderr


def test_an_answer_using_f_relu_gets_full_marks_despite_an_edited_imports_cell(graded):
    assert graded["grades"]["edited_imports"] == points()


@pytest.mark.parametrize("student", sorted(hostile.FIXED_CELLS))
def test_fixed_cells_put_back_are_named_in_log_notebook_table_and_feedback(graded, student):
    from coursekit.record import recorded_fixed_cells
    from coursekit.classroom.report import put_back

    edited, deleted = hostile.FIXED_CELLS[student]
    log = graded["first"].stderr
    if edited:
        assert "%s: edited fixed cells, put back as released (the edits are not graded): %s" % (
            student, ", ".join(edited)) in log
    if deleted:
        assert "%s: deleted cells, put back as released and graded: %s" % (
            student, ", ".join(deleted)) in log
    graded_notebook = nbformat.read(_autograded(graded, student), as_version=4)
    assert recorded_fixed_cells(graded_notebook) == (list(edited), list(deleted))
    said = put_back(graded["root"])[student]
    assert ("edits to fixed cells not graded: " + ", ".join(edited)) in said if edited else \
        "edits" not in said
    assert ("deleted cells put back: " + ", ".join(deleted)) in said if deleted else \
        "deleted" not in said
    page = (graded["root"] / "feedback" / student / ASSIGNMENT /
            NOTEBOOK.replace(".ipynb", ".html")).read_text()
    note = page[page.index("Note from the grader"):][:3000]
    if edited:
        assert "Your edits to these fixed cells were put back before grading and were not " \
            "graded: %s." % ", ".join("<code>%s</code>" % name for name in edited) in note
    if deleted:
        assert "they were put back before grading: %s." % ", ".join(
            "<code>%s</code>" % name for name in deleted) in note


def test_nobody_else_is_said_to_have_fixed_cells_put_back(graded, capsys):
    from coursekit.classroom.report import main, put_back

    assert set(put_back(graded["root"])) == set(hostile.FIXED_CELLS)
    main(graded["root"])
    table = capsys.readouterr().out
    line = next(line for line in table.splitlines() if line.startswith("edited_imports "))
    assert line.endswith("NOTE: edits to fixed cells not graded: imports, test_used")
    for student in set(hostile.CASES) - set(hostile.FIXED_CELLS) - set(hostile.BROKEN):
        page = graded["root"] / "feedback" / student / ASSIGNMENT / NOTEBOOK.replace(
            ".ipynb", ".html")
        text = page.read_text()
        assert "fixed cells" not in text and "were put back" not in text, student
        assert ("Note from the grader" in text) == (student in hostile.TAMPERING), student


def test_the_input_history_holds_no_hidden_test(graded):
    """A cell printing the kernel's input history shows the visible checks it ran, and no
    line of any hidden test: those never reach the kernel (the judge grades outside it)."""
    from test_grading import hidden_code

    root = graded["root"]
    graded_notebook = nbformat.read(root / "autograded" / "input_history" / ASSIGNMENT /
                                    NOTEBOOK, as_version=4)
    printed = "".join(o.get("text", "") for o in graded_notebook.cells[-1].outputs)
    assert "udl_bn_checks.score(udl_bn_checks.check_used(" in printed, printed[-2000:]
    page = (root / "feedback" / "input_history" / ASSIGNMENT /
            NOTEBOOK.replace(".ipynb", ".html")).read_text()
    leaked = [line for line in hidden_code() if line in printed or line in page]
    assert not leaked, leaked
    assert graded["grades"]["input_history"] == graded["grades"]["zz_reference"]


# Issue 24, items 7 and 8: grade cells nbgrader crashed on get a sentence and the rest of
# the notebook is graded; a student id full of control characters is printed escaped
# everywhere the instructor reads it. Read from the hostile class, which holds these cases.

@pytest.fixture(scope="module")
def odd_cases(graded):
    import contextlib
    import io

    from coursekit.classroom.report import main

    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        main(graded["root"])
    return dict(root=graded["root"], run=graded["first"], table=printed.getvalue(),
                parallel=graded["odd_parallel"], grades=graded["grades"])


@pytest.mark.parametrize("student", sorted(hostile.MALFORMED))
def test_a_malformed_grade_cell_gets_a_sentence_and_the_rest_is_graded(odd_cases, student):
    from coursekit.grading import attention

    assert "KeyError" not in odd_cases["run"].stderr
    assert odd_cases["grades"][student] == points()
    assert odd_cases["grades"][student] == odd_cases["grades"]["zz_reference"]
    recorded = attention.read(odd_cases["root"], ASSIGNMENT, student)
    assert recorded and hostile.MALFORMED[student] in recorded, recorded
    line = next(line for line in odd_cases["table"].splitlines()
                if line.startswith(student + " "))
    assert "NEEDS ATTENTION: " in line and hostile.MALFORMED[student] in line, line
    with open(odd_cases["root"] / "grades.csv", newline="") as handle:
        row = next(row for row in csv.DictReader(handle) if row["student"] == student)
    assert hostile.MALFORMED[student] in row["problem"]
    logged = [line for line in odd_cases["run"].stderr.splitlines()
              if hostile.MALFORMED[student] in line]
    assert logged and logged[0].startswith("[AutogradeApp | WARNING] %s: " % student), logged


def test_the_duplicated_check_is_graded_once_where_the_release_has_it(odd_cases):
    present = [cell_id for cell_id, _ in outputs(odd_cases, "duplicated_check")]
    assert present == [cell_id for cell_id, _ in outputs(odd_cases, "zz_reference")]


def test_the_locked_cell_without_an_id_ran_as_the_students_own(odd_cases):
    assert "my own notes" in output_of_cell_containing(odd_cases, "locked_without_id",
                                                       "scratch = ")


def test_a_student_id_full_of_control_characters_is_graded_and_printed_escaped(odd_cases):
    root = odd_cases["root"]
    # The id itself is the folder's: the gradebook keys the student on it, unchanged.
    assert odd_cases["grades"][hostile.ODD_ID] == points()
    printed = {"the autograde log": odd_cases["run"].stderr,
               "the grade table": odd_cases["table"],
               "the parallel progress and summary": odd_cases["parallel"].stdout
               + odd_cases["parallel"].stderr}
    with open(root / "grades.csv", newline="") as handle:
        printed["grades.csv"] = "\n".join("\t".join(row) for row in csv.reader(handle))
    for where, text in printed.items():
        assert not hostile.CONTROL_CHARACTERS.search(text), (where, text[-2000:])
        assert hostile.ODD_ID_SHOWN in text, (where, text[-2000:])
    progress = [line for line in odd_cases["parallel"].stdout.splitlines()
                if line.startswith("[1/1] ")]
    assert len(progress) == 1 and progress[0].startswith("[1/1] " + hostile.ODD_ID_SHOWN)
    assert " %g/%g " % (FULL, FULL + WRITTEN) in progress[0], progress
