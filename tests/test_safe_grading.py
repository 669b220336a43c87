"""Safe grading (issue 4): hostile and broken submissions through real `nbgrader autograde`.

One course copy holds an honest reference and one student per case of tests/hostile.py.
It is autograded twice with the course's config, sandbox on, as an instructor would: the
tests then check what each case earned, what it could touch, and that nothing was lost.
"""
import csv
import hashlib
from pathlib import Path
import socket
import threading

import nbformat
import pytest

import hostile
from conftest import nbgrader
from coursekit.report import collect, problems
from coursekit.samples import course_copy, submission_path
from coursekit.sync import ASSIGNMENT, NOTEBOOK, SOURCE_NOTEBOOK, grade_id
from test_grading import NETWORK_TESTS, points

# Short enough to keep the suite quick, far above the slowest honest cell (about 1 s).
TIMEOUT = ["--Execute.timeout=10"]


def checksums(folder):
    return {str(path.relative_to(folder)): hashlib.sha256(path.read_bytes()).hexdigest()
            for path in sorted(folder.rglob("*")) if path.is_file()}


class Listener:
    """A TCP server on loopback that records every connection it receives."""

    def __init__(self):
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        self.contacts = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                connection, address = self.server.accept()
            except OSError:
                return
            self.contacts.append(address)
            connection.close()


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    root = course_copy(tmp_path_factory.mktemp("hostile"))
    nbgrader(root, "generate_assignment", ASSIGNMENT, "--force")
    listener = Listener()
    for student, build in hostile.CASES.items():
        content = build(listener.port)
        path = submission_path(root, student)
        path.parent.mkdir(parents=True, exist_ok=True)
        if content is None:
            (path.parent / "my_notes.txt").write_text("I forgot to upload the notebook")
        elif isinstance(content, bytes):
            path.write_bytes(content)
        else:
            nbformat.write(content, path)
    fixed = {name: checksums(root / name) for name in ("submitted", "source", "release")}
    first = nbgrader(root, "autograde", ASSIGNMENT, "--force", *TIMEOUT, check=False)
    grades = grades_of(root)
    feedback = nbgrader(root, "generate_feedback", ASSIGNMENT, "--force", check=False)
    second = nbgrader(root, "autograde", ASSIGNMENT, "--force", *TIMEOUT, check=False)
    listener.server.close()
    return dict(root=root, listener=listener, fixed=fixed, first=first, second=second,
                grades=grades, regrades=grades_of(root), feedback=feedback)


def grades_of(root):
    rows, _, _ = collect("sqlite:///%s" % (root / "gradebook.db"))
    return {student: per_test for student, _, _, per_test in rows}


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


FULL = sum(points().values())
WRITTEN = sum(cell.metadata.nbgrader["points"] for cell in nbformat.read(
    SOURCE_NOTEBOOK, as_version=4).cells
    if cell.cell_type == "markdown" and cell.metadata.nbgrader.get("grade"))


def test_the_honest_student_is_graded_in_full(graded):
    assert total(graded, "zz_reference") == FULL


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
    assert hostile.BROKEN[student] in problems(graded["root"])[student]
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
    # Only its own folder holds the mark (nbgrader copies it on to the student's own
    # feedback), besides the notebooks and pages that quote its code.
    own = "%s-own-folder.txt" % hostile.MARK
    assert {p for p in planted if p.suffix not in (".ipynb", ".html")} == {
        root / step / "cheat" / ASSIGNMENT / own for step in ("autograded", "feedback")}


def test_student_code_has_no_network_not_even_loopback(graded):
    assert graded["listener"].contacts == []
    assert "no network" in output_of_cell_containing(graded, "network", "create_connection")
    assert total(graded, "network") == FULL


def test_a_memory_bomb_hits_the_cap_and_costs_only_its_cell(graded):
    assert "MemoryError" in output_of_cell_containing(graded, "memory_bomb", "def hog")
    assert total(graded, "memory_bomb") == FULL


def test_a_process_bomb_hits_the_cap_and_costs_only_its_cell(graded):
    text = output_of_cell_containing(graded, "process_bomb", "os.fork()")
    assert "BlockingIOError" in text or "Resource temporarily unavailable" in text, text
    assert total(graded, "process_bomb") == FULL


def test_an_endless_loop_is_interrupted_and_the_rest_runs(graded):
    assert "KeyboardInterrupt" in output_of_cell_containing(graded, "endless_loop",
                                                            "while True:\n    pass")
    assert total(graded, "endless_loop") == FULL


def test_a_loop_that_swallows_interrupts_is_stopped_and_graded_on_what_ran(graded):
    scores = graded["grades"]["stubborn_loop"]
    ran_before = set(NETWORK_TESTS)
    assert {t for t, s in scores.items() if s == points()[t]} == ran_before
    assert sum(scores[t] for t in set(scores) - ran_before) == 0
    assert "KernelStopped" in output_of_cell_containing(graded, "stubborn_loop",
                                                        "except KeyboardInterrupt")
    not_run = dict(outputs(graded, "stubborn_loop"))["test_plot_log"]
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
    from coursekit.report import main

    assert main(graded["root"]) == 1
    table = capsys.readouterr().out
    for student, says in hostile.BROKEN.items():
        line = next(line for line in table.splitlines() if line.startswith(student + " "))
        # Out of every point of the assignment, the written answer's included.
        assert "0/%g " % (FULL + WRITTEN) in line and "NEEDS ATTENTION" in line and says in line
    with open(graded["root"] / "grades.csv") as handle:
        flagged = {row["student"] for row in csv.DictReader(handle) if row["problem"]}
    assert flagged == set(hostile.BROKEN)


def test_submitted_is_never_modified(graded):
    assert checksums(graded["root"] / "submitted") == graded["fixed"]["submitted"]


def test_grading_again_gives_the_same_grades(graded):
    assert graded["regrades"] == graded["grades"]


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


def test_a_kernel_past_its_cpu_allowance_is_stopped_and_graded_on_what_ran(one_student):
    nbformat.write(hostile.cpu_hog(0), _path(one_student, "cpu_hog"))
    run = nbgrader(one_student, "autograde", ASSIGNMENT, "--force", "--student=cpu_hog",
                   "--Sandbox.cpu_seconds=20", "--Execute.timeout=100", check=False)
    assert run.returncode == 0, run.stderr[-3000:]
    notebook = nbformat.read(one_student / "autograded" / "cpu_hog" / ASSIGNMENT / NOTEBOOK,
                             as_version=4)
    hog = next(cell for cell in notebook.cells if cell.source == hostile.CPU_HOG)
    assert [o.ename for o in hog.outputs if o.output_type == "error"] == ["KernelStopped"]
    assert sum(grades_of(one_student)["cpu_hog"].values()) == 0
