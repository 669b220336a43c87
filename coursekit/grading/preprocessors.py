"""nbgrader preprocessors the course adds to ``generate_assignment`` and ``autograde``:
the release's stub, metadata put back, the helpers cell, unfinished figures, and
``SandboxedExecute``, the kernel's life while grading (its output caps and the judge's
round trip are the classes it builds on: outputcaps.py, judging.py)."""
import json
import sysconfig

from nbclient.exceptions import CellTimeoutError, DeadKernelError
from nbclient.util import ensure_async, run_sync

from coursekit import record
from coursekit.course import HELPERS_ID, grade_id, is_locked, is_solution
from coursekit.escape import printable
from coursekit.grading import grader
from coursekit.grading.judging import JudgedTestCells
from coursekit.grading.outputcaps import error_output
from coursekit.grading.quiet import CoursePreprocessor


class ReleaseStub(CoursePreprocessor):
    """Give a solution cell a runnable starting point instead of nbgrader's stub.

    nbgrader replaces a whole solution cell with ``raise NotImplementedError()``. The
    batch-norm TODO should instead open, as in the original notebook, on the plain
    network's code for students to adapt. A cell carrying that text in its metadata under
    ``udl.release_source`` gets it in the release; the metadata itself is removed.
    Runs right after ClearSolutions, before checksums are computed.
    """

    def preprocess_cell(self, cell, resources, cell_index):
        text = record.pop_release_source(cell)
        if text is not None:
            cell.source = text
        return cell, resources


class KernelLanguageInfo(CoursePreprocessor):
    """Give the release the language_info the course's kernel reports.

    JupyterLab writes the kernel's language_info into a notebook as soon as its kernel
    starts, and a notebook that changed shows as modified (●) before the student has
    typed anything. With the kernel's own words already there, it has nothing to write.
    ipykernel reports the Python it runs on: the virtualenv's, which also makes the
    release. (Another Python's version still differs; Colab ignores the field.)
    """

    def preprocess(self, nb, resources):
        from ipykernel.ipkernel import IPythonKernel

        nb.metadata["language_info"] = json.loads(json.dumps(IPythonKernel.language_info))
        return nb, resources


class HelpersOneLine(CoursePreprocessor):
    """The self-check helpers cell as one line where a person reads a graded notebook:
    the formgrader's Manual Grading and the feedback pages (nbgrader_config.py sets it on
    both, as HTMLExporter's). Its code is the course's, the same for every student, and
    says nothing about the student's work. Only the rendering changes, never a file."""

    def preprocess_cell(self, cell, resources, cell_index):
        if cell.cell_type == "code" and grade_id(cell) == HELPERS_ID:
            lines = [line for line in cell.source.splitlines() if line.strip()]
            first = next((line for line in lines if line.startswith("#")),
                         "# %s" % HELPERS_ID)
            rest = len(lines) - 1
            cell.source = first + ("  [%d more line%s, not shown here]" % (
                rest, "" if rest == 1 else "s") if rest > 0 else "")
            # nbconvert's pages give the cell the class celltag_<tag>: it can be found.
            tags = cell.metadata.get("tags")
            if isinstance(tags, list) and HELPERS_ID not in tags:
                tags.append(HELPERS_ID)
            elif not isinstance(tags, list):
                cell.metadata["tags"] = [HELPERS_ID]
        return cell, resources


UNFINISHED_FIGURE_ALT = ("An unfinished figure: the error above stopped this cell before "
                         "it could draw and describe it.")
IMAGE_TYPES = ("image/png", "image/jpeg")


class UnfinishedFigures(CoursePreprocessor):
    """Alt text for a figure one of the course's own cells had begun when an error stopped it.

    The course's figure cells describe each figure as they show it (checks.show). When an
    unanswered TODO leaves a name undefined, the cell stops first, and the inline backend
    still shows the figure it had opened, with no description: nbconvert then warned
    "Alternative text is missing" for every such student, and a screen reader said
    nothing of what the picture is. Images of the student's own cells are left alone, and
    nbconvert still names those. Only the rendering changes, never a file (as
    HelpersOneLine; nbgrader_config.py sets both on HTMLExporter).
    """

    def preprocess_cell(self, cell, resources, cell_index):
        if cell.cell_type != "code" or not is_locked(cell) or is_solution(cell):
            return cell, resources
        outputs = cell.get("outputs", [])
        if not any(output.get("output_type") == "error" for output in outputs):
            return cell, resources
        for output in outputs:
            if output.get("output_type") not in ("display_data", "execute_result"):
                continue
            for kind in IMAGE_TYPES:
                if kind in output.get("data", {}):
                    metadata = output.setdefault("metadata", {}).setdefault(kind, {})
                    if isinstance(metadata, dict) and not metadata.get("alt"):
                        metadata["alt"] = UNFINISHED_FIGURE_ALT
        return cell, resources


class RestoreMetadata(CoursePreprocessor):
    """Give back what a submission lost or changed of the release's cells, and say so.

    - Nbgrader metadata an editor stripped: without it every grade of that student is
      missing. Cells are matched to the release (coursekit.grading.intake).
    - Fixed (locked) cells the student edited: OverwriteCells puts the release's text back,
      so those edits are not graded. They are named in the log and recorded in the
      notebook's metadata (coursekit.record.record_fixed_cells), which the feedback page
      and the grade table show.
    - Graded or fixed cells the student deleted, any number in any order: put back where
      the release has them, then graded (nbgrader's own repair crashes on several).
    - Grade cells nbgrader would crash on (two sharing a grade id, a marked cell with no
      id of the release's): repaired first, the student graded on the rest, and the
      sentence saying what was wrong recorded with the rest (coursekit.grading.intake).

    Runs first among autograde's sanitize steps, before OverwriteCells. The record is the
    grader's: it replaces whatever the submission held under its key, and no student code
    has run yet (the kernel starts after sanitizing, and never sees notebook metadata).
    """

    def preprocess(self, nb, resources):
        from nbgrader.coursedir import CourseDirectory

        from coursekit.grading.intake import (edited_fixed_cells, put_back_missing_cells,
                                              repair_grade_cells, restore_metadata)
        from coursekit.authoring.releases import published_digests, release_notebooks

        info = resources["nbgrader"]
        student = printable(info["student"])
        release = release_notebooks(CourseDirectory(parent=self), info["assignment"])
        release = release[info["notebook"]]
        repair = repair_grade_cells(nb, release)
        restored = restore_metadata(nb, release, name="%s's %s" % (student, info["notebook"]))
        repaired = repair.sentence()
        if repaired:
            self.log.warning("%s: %s", student, repaired)
        if restored:
            self.log.warning("%s: restored nbgrader metadata of %d cells by matching them "
                             "to the release", student, len(restored))
        edited = edited_fixed_cells(nb, release,
                                    published_digests(CourseDirectory(parent=self).root))
        if edited:
            self.log.warning("%s: edited fixed cells, put back as released (the edits are "
                             "not graded): %s", student, ", ".join(edited))
        put_back = put_back_missing_cells(nb, release)
        if put_back:
            self.log.warning("%s: deleted cells, put back as released and graded: %s",
                             student, ", ".join(put_back))
        record.record_fixed_cells(nb, edited, put_back, repaired)
        return nb, resources


# This machine's Python folders, and how any machine's are named in stored outputs.
_PATHS = sysconfig.get_paths()
PORTABLE_FOLDERS = tuple((folder.rstrip("/") + "/", name + "/") for folder, name in (
    (_PATHS["purelib"], "site-packages"), (_PATHS["platlib"], "site-packages"),
    (_PATHS["stdlib"], "python%s" % sysconfig.get_python_version())))


def portable(text):
    """`text` with this machine's Python folders named as on any machine: "site-packages/"
    for the virtualenv's packages, "python3.11/" for the standard library."""
    for folder, name in PORTABLE_FOLDERS:
        text = text.replace(folder, name)
    return text


class PortablePaths(CoursePreprocessor):
    """Outputs that name the grading machine's Python as any machine's.

    A traceback through torch names the file of each frame, under the virtualenv the
    course was installed in (/home/ta/udl/.venv/lib/python3.11/site-packages/torch/...):
    it is kept as site-packages/torch/..., so a feedback page says nothing of where the
    course lives, and grading the same notebook in another clone writes the same file.
    """

    def preprocess_cell(self, cell, resources, cell_index):
        for output in cell.get("outputs", []) if cell.cell_type == "code" else []:
            if output.get("output_type") == "error":
                output["traceback"] = [portable(line) if isinstance(line, str) else line
                                       for line in output.get("traceback") or []]
            elif output.get("output_type") == "stream" and isinstance(output.get("text"), str):
                output["text"] = portable(output["text"])
        return cell, resources


# Why a cell's kernel was stopped, when a budget of the whole submission was the reason.
STOPPED_AT_A_LIMIT = "the grader stopped the kernel while running this cell: %s"


class SandboxedExecute(JudgedTestCells):
    """The course's Execute for grading: each kernel in the course sandbox, its output
    within the caps (coursekit.grading.outputcaps), its test cells graded by the judge
    (coursekit.grading.judging), and no lost students.

    - Stock nbgrader drops a submission whose kernel dies (memory, CPU limit, a crash) or
      ignores the interrupt at the timeout: no autograded notebook, no feedback, no
      grade. Here that kernel is stopped, the cell gets an error saying why, every later
      code cell gets an error saying it did not run (an empty test cell would score full
      points), and the student is graded on what ran.
    - After a cell fails, the kernel lets go of what its frames held, so a cell that ran
      out of memory does not starve the cells after it (grader.RELEASE_FAILED_CELL).
    """

    def __init__(self, *args, **kwargs):
        from coursekit.grading.sandbox import SandboxedKernelManager

        kwargs.setdefault("kernel_manager_class", SandboxedKernelManager)
        # Every output is in by the last reply; a graceful exit of a kernel holding torch
        # takes another second and a half per notebook, for nothing.
        kwargs.setdefault("shutdown_kernel", "immediate")
        super().__init__(*args, **kwargs)
        self._stopped_because = None

    def preprocess(self, nb, resources=None, km=None):
        self._stopped_because = None
        return super().preprocess(nb, resources, km)

    async def async_execute_cell(self, cell, cell_index, execution_count=None,
                                 store_history=True):
        if self._stopped_because is not None:
            if cell.cell_type == "code" and cell.source.strip():
                cell.outputs = [error_output("CellNotRun", "This cell did not run: %s"
                                             % self._stopped_because)]
            return cell
        try:
            ran = await super().async_execute_cell(cell, cell_index, execution_count,
                                                   store_history)
            if not self.is_judged(cell) and any(o.get("output_type") == "error"
                                                for o in cell.get("outputs", [])):
                await self._release_failed_cell(cell_index)
            return ran
        except CellTimeoutError:
            # A cell that filled /tmp up to the memory limit can stall at it until its time
            # runs out: then the memory is the reason to name, not the time.
            limit = getattr(self.km, "why_it_is_stuck", lambda: None)()
            reason = (STOPPED_AT_A_LIMIT % limit if limit else "the cell ran past the %s s "
                      "time limit and ignored the interrupt, so the grader stopped its kernel"
                      % self.timeout)
        except DeadKernelError:
            limit = getattr(self.km, "why_it_died", lambda: None)()
            reason = (STOPPED_AT_A_LIMIT % limit
                      if limit else "the kernel stopped while running this cell: it "
                      "crashed, or used more memory, processes or CPU time than grading "
                      "allows")
        self.log.error("%sCell %d: %s; later cells are not run.", self._named(), cell_index,
                       reason)
        self._stopped_because = "an earlier cell stopped the kernel (%s)." % reason
        cell.outputs.append(error_output("KernelStopped", reason[0].upper() + reason[1:] + "."))
        if await ensure_async(self.km.is_alive()):
            await ensure_async(self.km.shutdown_kernel(now=True))
        return cell

    async def _release_failed_cell(self, cell_index):
        """Let go of what a failed cell's frames hold (see grader.RELEASE_FAILED_CELL)."""
        try:
            await self._run_own_cell(grader.RELEASE_FAILED_CELL, cell_index)
        except (CellTimeoutError, DeadKernelError):
            raise  # the kernel is past helping: the cell that failed says so
        except Exception as error:  # what the student's code sent meanwhile, say
            self.log.warning("%sCell %d: could not release what the failed cell held (%s)",
                             self._named(), cell_index, error)

    # nbclient binds the synchronous name to its own coroutine when its class is defined.
    execute_cell = run_sync(async_execute_cell)
