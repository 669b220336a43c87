"""nbgrader preprocessors the course adds to ``generate_assignment`` and ``autograde``."""
import nbformat
from nbclient.util import ensure_async, run_sync
from nbclient.exceptions import CellTimeoutError, DeadKernelError
from nbgrader.preprocessors import Execute, NbGraderPreprocessor

RELEASE_SOURCE_KEY = "release_source"


class ReleaseStub(NbGraderPreprocessor):
    """Give a solution cell a runnable starting point instead of nbgrader's stub.

    nbgrader replaces a whole solution cell with ``raise NotImplementedError()``. The
    batch-norm TODO should instead open, as in the original notebook, on the plain
    network's code for students to adapt. A cell carrying that text in its metadata under
    ``udl.release_source`` gets it in the release; the metadata itself is removed.
    Runs right after ClearSolutions, before checksums are computed.
    """

    def preprocess_cell(self, cell, resources, cell_index):
        course_metadata = cell.metadata.get("udl", {})
        if RELEASE_SOURCE_KEY in course_metadata:
            cell.source = course_metadata.pop(RELEASE_SOURCE_KEY)
            if not course_metadata:
                del cell.metadata["udl"]
        return cell, resources


class RestoreMetadata(NbGraderPreprocessor):
    """Give back the nbgrader metadata of a submission whose editor stripped it.

    Without it every grade of that student is missing, and nbgrader's own repair of
    deleted cells crashes. Cells are matched to the release (coursekit.intake); runs
    first among autograde's sanitize steps, before OverwriteCells restores locked cells.
    """

    def preprocess(self, nb, resources):
        from nbgrader.coursedir import CourseDirectory

        from coursekit.autograde import release_notebooks
        from coursekit.intake import restore_metadata

        info = resources["nbgrader"]
        release = release_notebooks(CourseDirectory(parent=self), info["assignment"])
        restored = restore_metadata(nb, release[info["notebook"]], name="%s's %s" % (
            info["student"], info["notebook"]))
        if restored:
            self.log.warning("%s: restored nbgrader metadata of %d cells by matching them "
                             "to the release", info["student"], len(restored))
        return nb, resources


class SandboxedExecute(Execute):
    """nbgrader's Execute, with each kernel in the course sandbox and no lost students.

    Stock nbgrader drops a submission whose kernel dies (memory, CPU limit, a crash) or
    ignores the interrupt at the timeout: no autograded notebook, no feedback, no grade.
    Here that kernel is stopped, the cell gets an error saying why, every later code cell
    gets an error saying it did not run (an empty test cell would score full points), and
    the student is graded on what ran.
    """

    def __init__(self, *args, **kwargs):
        from coursekit.sandbox import SandboxedKernelManager

        kwargs.setdefault("kernel_manager_class", SandboxedKernelManager)
        # Every output is in by the last reply; a graceful exit of a kernel holding torch
        # takes another second and a half per notebook, for nothing.
        kwargs.setdefault("shutdown_kernel", "immediate")
        # How a cell's printout is split into messages depends on timing; one stream per
        # cell makes graded notebooks and feedback pages identical from run to run.
        kwargs.setdefault("coalesce_streams", True)
        super().__init__(*args, **kwargs)

    def preprocess(self, nb, resources=None, km=None):
        self._stopped_because = None
        return super().preprocess(nb, resources, km)

    async def async_execute_cell(self, cell, cell_index, execution_count=None,
                                 store_history=True):
        if self._stopped_because is not None:
            if cell.cell_type == "code" and cell.source.strip():
                cell.outputs = [_error("CellNotRun", "This cell did not run: %s"
                                       % self._stopped_because)]
            return cell
        try:
            return await super().async_execute_cell(cell, cell_index, execution_count,
                                                    store_history)
        except CellTimeoutError:
            reason = ("the cell ran past the %s s time limit and ignored the interrupt, so "
                      "the grader stopped its kernel" % self.timeout)
        except DeadKernelError:
            reason = ("the kernel stopped while running this cell: it crashed, or used more "
                      "memory, processes or CPU time than grading allows")
        self.log.error("Cell %d: %s; later cells are not run.", cell_index, reason)
        self._stopped_because = "an earlier cell stopped the kernel (%s)." % reason
        cell.outputs.append(_error("KernelStopped", reason[0].upper() + reason[1:] + "."))
        if await ensure_async(self.km.is_alive()):
            await ensure_async(self.km.shutdown_kernel(now=True))
        return cell

    # nbclient binds the synchronous name to its own coroutine when its class is defined.
    execute_cell = run_sync(async_execute_cell)


def _error(name, message):
    return nbformat.v4.new_output("error", ename=name, evalue=message,
                                  traceback=["%s: %s" % (name, message)])
