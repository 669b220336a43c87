"""nbgrader preprocessors the course adds to ``generate_assignment`` and ``autograde``."""
import json
import secrets

import nbformat
from nbclient.util import ensure_async, run_sync
from nbclient.exceptions import CellTimeoutError, DeadKernelError
from nbgrader.preprocessors import Execute
from traitlets import Integer

from coursekit import record
from coursekit.grading import grader
from coursekit.course import HELPERS_ID, grade_id, is_graded, is_locked, is_solution
from coursekit.escape import printable
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


class SandboxedExecute(Execute):
    """nbgrader's Execute, with each kernel in the course sandbox, grades decided by the
    judge, and no lost students.

    - Autograded test cells: the kernel runs the cell's visible code only (its output is
      kept, as the student saw it), then the grader's request for observations; the
      cell's graded outcome is the judge's verdict, decided in this process
      (coursekit.grading.grader). What looks like tampering is recorded in the notebook's
      metadata and logged.
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
        # How a cell's printout is split into messages depends on timing; one stream per
        # cell makes graded notebooks and feedback pages identical from run to run.
        kwargs.setdefault("coalesce_streams", True)
        super().__init__(*args, **kwargs)
        # nbclient's own merging is quadratic in a line's length; ours (see output) is not.
        self.merge_streams, self.coalesce_streams = self.coalesce_streams, False
        self._notebook_kept = 0
        self._cell = _CellOutput()
        self._student = None
        # The judge's state for one notebook (preprocess sets it up again for each).
        self._requesting = False
        self._observed, self._findings, self._distrust = {}, [], None

    max_cell_output_bytes = Integer(1_000_000, help=(
        "Output one cell may leave in the graded notebook, in bytes (text as UTF-8, images "
        "as base64). Beyond it the cell's output is cut, with a note saying so. The largest "
        "of this course's honest cells, a figure, is 95 KB.")).tag(config=True)

    max_notebook_output_bytes = Integer(5_000_000, help=(
        "Output a whole notebook may leave in the graded notebook, in bytes. Beyond it "
        "every later cell's output is cut, with a note saying so. The course's honest "
        "notebooks leave at most 233 KB.")).tag(config=True)

    def preprocess(self, nb, resources=None, km=None):
        from nbgrader.coursedir import CourseDirectory

        self._stopped_because = None
        self._notebook_kept = 0
        self._student = ((resources or {}).get("nbgrader") or {}).get("student")
        self._requesting = False
        self._observed = {}
        self._findings = grader.suspicious_cells(nb)
        self._distrust = grader.distrusted(self._findings)
        self._secret = grader.course_secret(CourseDirectory(parent=self).root)
        self._submission = grader.submission_digest([c.get("source") for c in nb.cells])
        nb, resources = super().preprocess(nb, resources, km)
        if self._findings:
            sentence = grader.tampering_sentence(list(dict.fromkeys(self._findings)))
            record.record_tampering(nb, sentence)
            self.log.error("%s%s", self._named(), sentence)
        return nb, resources

    def _named(self):
        """The student's name to start a log line with (the grading log mixes students)."""
        return "%s: " % printable(self._student) if self._student else ""

    async def async_execute_cell(self, cell, cell_index, execution_count=None,
                                 store_history=True):
        if self._stopped_because is not None:
            if cell.cell_type == "code" and cell.source.strip():
                cell.outputs = [_error("CellNotRun", "This cell did not run: %s"
                                       % self._stopped_because)]
            return cell
        try:
            if self.is_judged(cell):
                return await self._judged(cell, cell_index, execution_count, store_history)
            if cell.cell_type == "code":
                self._observed.clear()  # the student's code may change what is observed
            ran = await self._execute_within_caps(cell, cell_index, execution_count,
                                                  store_history)
            if any(o.get("output_type") == "error" for o in cell.get("outputs", [])):
                await self._release_failed_cell(cell_index)
            return ran
        except CellTimeoutError:
            reason = ("the cell ran past the %s s time limit and ignored the interrupt, so "
                      "the grader stopped its kernel" % self.timeout)
        except DeadKernelError:
            limit = getattr(self.km, "why_it_died", lambda: None)()
            reason = ("the grader stopped the kernel while running this cell: %s" % limit
                      if limit else "the kernel stopped while running this cell: it "
                      "crashed, or used more memory, processes or CPU time than grading "
                      "allows")
        self.log.error("%sCell %d: %s; later cells are not run.", self._named(), cell_index,
                       reason)
        self._stopped_because = "an earlier cell stopped the kernel (%s)." % reason
        cell.outputs.append(_error("KernelStopped", reason[0].upper() + reason[1:] + "."))
        if await ensure_async(self.km.is_alive()):
            await ensure_async(self.km.shutdown_kernel(now=True))
        return cell

    async def _run_own_cell(self, source, cell_index):
        """Run the grader's own code in the kernel, as a cell of its own: its outputs are
        read, never kept in the notebook (a request's room, not a cell's), and the
        notebook's cell stays where nbclient would put the grader's."""
        here = self.nb.cells[cell_index]
        probe = nbformat.v4.new_code_cell(source)
        self._requesting = True
        try:
            await self._execute_within_caps(probe, cell_index, None, False)
        finally:
            self._requesting = False
            self.nb.cells[cell_index] = here
        return probe.outputs

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

    # The judge. A test cell's hidden part never reaches the kernel.

    def is_judged(self, cell):
        """Whether the judge grades this cell: an autograded test cell the course knows."""
        return (cell.cell_type == "code" and is_graded(cell) and not is_solution(cell)
                and grade_id(cell) in grader.TESTS)

    async def _judged(self, cell, cell_index, execution_count, store_history):
        from coursekit.grading.feedback import visible_source

        test = grade_id(cell)
        check, arguments = grader.TESTS[test]
        shown = nbformat.v4.new_code_cell(visible_source(cell.source))
        try:
            await self._execute_within_caps(shown, cell_index, execution_count, store_history)
            said_passed = grader.kernel_passed(shown.outputs)
            verdicts = await self._verdicts(check, arguments, cell_index)
        finally:
            self.nb.cells[cell_index] = cell  # nbclient put the cell it ran there
            cell.outputs = [o for o in shown.outputs if not _grades(o)]
            cell.execution_count = shown.get("execution_count")
        first = next((v for v in verdicts if not v.passed), verdicts[0])
        if said_passed is not None and said_passed != verdicts[0].passed:
            self._findings.append("%s printed %s in the notebook's kernel but %s in the "
                                  "grader's run" % (test, "✓" if said_passed else "✗",
                                                    "fails" if said_passed else "passes"))
        if not first.passed:
            cell.outputs.append(_error(*first.raised))
        return cell

    async def _verdicts(self, check, arguments, cell_index):
        """The judge's verdicts for seed 0 and a secret seed, observing once for every test
        cell in a row that reads the same observations."""
        from coursekit.kernel import checks

        asked = grader.ASKED.get(check, check)
        key = (checks.OBSERVERS[asked], arguments)
        if key not in self._observed:
            seeds = [0, grader.secret_seed(self._secret, self._student or "",
                                           self._submission, asked, arguments)]
            nonce = secrets.token_hex(16)
            outputs = await self._run_own_cell(grader.request(asked, arguments, seeds, nonce),
                                               cell_index)
            reply = grader.read_reply(outputs, nonce, seeds)
            if isinstance(reply, grader.Observed):
                if reply.integrity:
                    self._findings.append("code in the notebook replaced or hooked %s"
                                          % ", ".join(reply.integrity))
                if reply.hooked_while_observing:
                    self._findings.append("code in the notebook set %s while the checks ran"
                                          % ", ".join(reply.hooked_while_observing))
                changed = grader.changed_modules(reply.fingerprints)
                if changed:
                    self._findings.append("the notebook changed the checks' own code (%s)"
                                          % ", ".join(changed[:8]))
            self._observed[key] = (seeds, reply)
        seeds, reply = self._observed[key]
        verdicts, findings = grader.verdicts(check, arguments, reply, seeds, self._distrust)
        self._findings.extend(findings)
        return verdicts


    # Output caps. The student's kernel decides what it sends, and how much: every output
    # message is measured as it arrives and kept only within the caps, before anything
    # (nbclient, nbgrader's IgnorePattern, the feedback page) reads or copies it.

    async def _execute_within_caps(self, cell, cell_index, execution_count, store_history):
        self._cell = _CellOutput()
        try:
            return await super().async_execute_cell(cell, cell_index, execution_count,
                                                    store_history)
        finally:
            self._finish_outputs(cell, cell_index)

    def process_message(self, msg, cell, cell_index):
        kind = msg.get("msg_type", "")
        if kind in _OUTPUT_MESSAGES or kind.startswith("comm"):
            msg = self._within_caps(msg, kind)
            if msg is None:
                return None
        return super().process_message(msg, cell, cell_index)

    def _within_caps(self, msg, kind):
        """`msg` if it fits, a shortened copy, or None to drop it."""
        content = msg.get("content")
        if not isinstance(content, dict):
            return None
        size = _message_size(kind, content)
        if kind == "update_display_data":
            # One update rewrites every earlier output that shares its display id.
            display_id = (content.get("transient") or {}).get("display_id")
            size *= max(1, sum(len(indices) for indices in
                               self._display_id_map.get(display_id, {}).values()))
        cell = self._cell
        cell.seen += size
        if self._requesting:
            # The grader's own request: its reply is read, judged and dropped, never kept.
            if cell.kept + size > grader.MAX_OBSERVATION_BYTES:
                return None
            cell.kept += size
            return msg
        room = max(0, min(self.max_cell_output_bytes - cell.kept,
                          self.max_notebook_output_bytes - self._notebook_kept))
        if size <= room:
            self._keep(size)
            return msg
        cell.cut = True
        cell.by_notebook |= (self.max_notebook_output_bytes - self._notebook_kept
                             < self.max_cell_output_bytes - cell.kept)
        # Outputs that decide a test cell's grade (an error, anything on stderr, a number
        # as the result) are kept in short form even past the caps, once each per cell:
        # dropping them would turn a failed test into a passed one.
        if kind == "stream" and isinstance(content.get("text"), str):
            keep = room
            if not keep and content.get("name") == "stderr" and cell.first("stderr"):
                keep = _SHORT
            if not keep:
                return None
            text = _head(content["text"], keep)
            self._keep(_size(text))
            return dict(msg, content=dict(content, text=text))
        if kind == "error" and cell.first("error"):
            short = _short_error(content.get("ename"), content.get("evalue"))
            self._keep(_SHORT)
            return dict(msg, content=dict(content, **short))
        if kind == "execute_result" and cell.first("execute_result"):
            data = content.get("data")
            plain = data.get("text/plain") if isinstance(data, dict) else None
            if isinstance(plain, str) and _size(plain) <= _SHORT:
                self._keep(_SHORT)
                return dict(msg, content=dict(content, data={"text/plain": plain},
                                              metadata={}))
        return None

    def _keep(self, size):
        self._cell.kept += size
        self._notebook_kept += size

    def output(self, outs, msg, display_id, cell_index):
        if (msg["msg_type"] != "stream"
                or self.output_hook_stack[msg["parent_header"].get("msg_id")]):
            return super().output(outs, msg, display_id, cell_index)
        content = msg["content"]
        name, text = content.get("name"), content.get("text")
        if not (isinstance(name, str) and isinstance(text, str)):
            return None
        if self.clear_before_next_output:
            outs[:] = []
            self.clear_display_id_mapping(cell_index)
            self.clear_before_next_output = False
            self._cell.streams.clear()
        # Like nbclient's coalescing: all of a cell's text on one stream goes to the
        # first output of that stream. Pieces are joined once, when the cell ends.
        pieces = self._cell.streams.get(name) if self.merge_streams else None
        if pieces is None:
            stream = nbformat.v4.new_output("stream", name=name, text=text)
            outs.append(stream)
            if self.merge_streams:
                pieces = self._cell.streams[name] = [stream, text]
                self._cell.merged.append(pieces)
            return stream
        pieces.append(text)
        return pieces[0]

    def clear_output(self, outs, msg, cell_index):
        super().clear_output(outs, msg, cell_index)
        if not outs:
            self._cell.streams.clear()

    def _finish_outputs(self, cell, cell_index):
        state, self._cell = self._cell, _CellOutput()
        if "outputs" not in cell:  # markdown, which nbclient skips
            return
        for stream, *pieces in state.merged:
            stream["text"] = terminal_text("".join(pieces))
        if self.merge_streams:
            _stdout_before_stderr(cell.outputs)
        # nbgrader appends the execute reply's error when no output names it; that one
        # never passed through process_message.
        for index, output in enumerate(cell.outputs):
            if (output.get("output_type") == "error"
                    and _output_size(output) > max(_SHORT, self.max_cell_output_bytes)):
                cell.outputs[index] = nbformat.v4.new_output("error", **_short_error(
                    output.get("ename"), output.get("evalue")))
                state.cut = True
        if not state.cut:
            return
        note = self._cut_note(state)
        self.log.warning("%sCell %d: %s", self._named(),
                         cell_index, note[1:-1])
        stdout = next((o for o in cell.outputs if o.get("output_type") == "stream"
                       and o.get("name") == "stdout"), None)
        if stdout is None:
            cell.outputs.append(nbformat.v4.new_output("stream", name="stdout",
                                                       text=note + "\n"))
        else:
            text = stdout["text"]
            stdout["text"] = text + ("" if not text or text.endswith("\n") else "\n") + note + "\n"

    def _cut_note(self, state):
        seen, kept = _amount(state.seen), _amount(state.kept)
        if state.by_notebook:
            return ("[output cut: this notebook's output passed the %s grading keeps; this "
                    "cell's came to %s, %s]" % (_amount(self.max_notebook_output_bytes), seen,
                                                "of which grading keeps %s" % kept
                                                if state.kept else "and none of it is kept"))
        if not state.kept:
            return "[output cut: this cell's output came to %s, more than the %s grading " \
                "keeps of a cell]" % (seen, _amount(self.max_cell_output_bytes))
        return "[output cut: this cell's output came to %s; grading keeps %s of it]" % (
            seen, kept)


def _grades(output):
    """Whether nbgrader reads a grade from this output (so only the judge may leave one)."""
    kind = output.get("output_type")
    return kind in ("error", "execute_result") or (kind == "stream"
                                                    and output.get("name") == "stderr")


def _error(name, message):
    from coursekit.kernel.judge import wrapped  # grading has loaded the judge already

    return nbformat.v4.new_output("error", ename=name, evalue=message, traceback=[
        wrapped("%s: %s" % (name, message))])


# Message types whose content ends up in the notebook.
_OUTPUT_MESSAGES = {"stream", "display_data", "execute_result", "error", "update_display_data"}
# Room for one short form of an output that decides a grade, and what one output costs
# besides its content (so that a million empty outputs count too).
_SHORT = 1000
_OVERHEAD = 64


class _CellOutput:
    """What one cell's kernel has sent so far, and what of it is kept."""

    def __init__(self):
        self.seen = self.kept = 0
        self.cut = self.by_notebook = False
        self.streams = {}  # stream name -> [its output, text pieces...] while merging
        self.merged = []
        self._short = set()

    def first(self, kind):
        """True the first time a short form of `kind` is asked for in this cell."""
        if kind in self._short:
            return False
        self._short.add(kind)
        return True


def _size(value):
    """Bytes `value` takes in the notebook file (about, for anything but text)."""
    if isinstance(value, str):
        return len(value.encode("utf-8", "surrogatepass"))
    try:
        return len(json.dumps(value, ensure_ascii=False, default=str).encode(
            "utf-8", "surrogatepass"))
    except (TypeError, ValueError, RecursionError):
        return 1 << 62


def _message_size(kind, content):
    if kind == "stream":
        return _size(content.get("text", ""))
    if kind == "error":
        return _OVERHEAD + sum(_size(content.get(key, "")) for key in
                               ("ename", "evalue", "traceback"))
    if kind.startswith("comm"):
        return _OVERHEAD + _size(content.get("data", {}))
    return _OVERHEAD + _size(content.get("data", {})) + _size(content.get("metadata", {}))


def _output_size(output):
    return _message_size(output.get("output_type", ""), output)


def _head(text, size):
    """The longest start of `text` that is at most `size` bytes of UTF-8."""
    return text[:size].encode("utf-8", "surrogatepass")[:size].decode("utf-8", "ignore")


def _short_error(ename, evalue):
    ename = _head(ename if isinstance(ename, str) else "Error", 100)
    evalue = _head(evalue if isinstance(evalue, str) else "", _SHORT // 2)
    return dict(ename=ename, evalue=evalue,
                traceback=["%s: %s (traceback cut: it was too long to keep)" % (ename, evalue)])


def _amount(size):
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("KB", 1e3)):
        if size >= scale:
            return ("%.1f %s" % (size / scale, unit)).replace(".0 ", " ")
    return "%d bytes" % size


def terminal_text(text):
    """nbclient's handling of carriage returns in a stream, in linear time.

    nbclient removes each line's text up to its last carriage return that is followed by
    more of that line, with a regular expression that takes time quadratic in a line's
    length. (Its backspace handling never runs: its loop stops before the first pass.)
    """
    if "\r" not in text:
        return text
    lines = text.split("\n")
    for index, line in enumerate(lines):
        # A carriage return that ends the text, or its line, stays.
        last = line.rfind("\r", 0, len(line) - 1)
        if last >= 0:
            lines[index] = line[last + 1:]
    return "\n".join(lines)


def _stdout_before_stderr(outputs):
    """nbclient's coalescing puts stdout before a stderr right above it (their order
    depends on timing); the same loop, as nbclient has it."""
    for i, output in enumerate(outputs):
        if output.get("output_type") == "stream" and output.get("name") == "stderr":
            if (len(outputs) >= i + 2 and outputs[i + 1].get("output_type") == "stream"
                    and outputs[i + 1].get("name") == "stdout"):
                outputs.insert(i, outputs.pop(i + 1))
