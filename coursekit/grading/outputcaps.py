"""Output caps: what a student's kernel may leave in the graded notebook.

The student's kernel decides what it sends, and how much: every output message is measured
as it arrives and kept only within the caps (per cell and per notebook), before anything
(nbclient, nbgrader's IgnorePattern, the feedback page) reads or copies it. Outputs that
decide a test cell's grade (an error, stderr, a number as the result) are kept in short
form past the caps. A cell's text on one stream is merged into one output, as nbclient's
coalescing does, in linear time. Cells of the grader's own (`_run_own_cell`) are read,
never kept.
"""
import json

import nbformat
from nbclient.util import run_sync
from nbgrader.preprocessors import Execute
from traitlets import Integer

from coursekit.escape import printable
from coursekit.grading import grader


class CappedOutputs(Execute):
    """nbgrader's Execute, keeping each cell's output within the caps (`c.SandboxedExecute.*`
    in nbgrader_config.py sets them for grading)."""

    def __init__(self, *args, **kwargs):
        # How a cell's printout is split into messages depends on timing; one stream per
        # cell makes graded notebooks and feedback pages identical from run to run.
        kwargs.setdefault("coalesce_streams", True)
        super().__init__(*args, **kwargs)
        # nbclient's own merging is quadratic in a line's length; ours (see output) is not.
        self.merge_streams, self.coalesce_streams = self.coalesce_streams, False
        self._notebook_kept = 0
        self._cell = _CellOutput()
        self._student = None
        self._requesting = False  # while a cell of the grader's own runs

    max_cell_output_bytes = Integer(1_000_000, help=(
        "Output one cell may leave in the graded notebook, in bytes (text as UTF-8, images "
        "as base64). Beyond it the cell's output is cut, with a note saying so. The largest "
        "of this course's honest cells, a figure, is 95 KB.")).tag(config=True)

    max_notebook_output_bytes = Integer(5_000_000, help=(
        "Output a whole notebook may leave in the graded notebook, in bytes. Beyond it "
        "every later cell's output is cut, with a note saying so. The course's honest "
        "notebooks leave at most 233 KB.")).tag(config=True)

    def preprocess(self, nb, resources=None, km=None):
        self._notebook_kept = 0
        self._student = ((resources or {}).get("nbgrader") or {}).get("student")
        self._requesting = False
        return super().preprocess(nb, resources, km)

    def _named(self):
        """The student's name to start a log line with (the grading log mixes students)."""
        return "%s: " % printable(self._student) if self._student else ""

    async def async_execute_cell(self, cell, cell_index, execution_count=None,
                                 store_history=True):
        return await self._execute_within_caps(cell, cell_index, execution_count,
                                               store_history)

    # nbclient binds the synchronous name to its own coroutine when its class is defined.
    execute_cell = run_sync(async_execute_cell)

    async def _execute_within_caps(self, cell, cell_index, execution_count, store_history):
        self._cell = _CellOutput()
        try:
            return await super().async_execute_cell(cell, cell_index, execution_count,
                                                    store_history)
        finally:
            self._finish_outputs(cell, cell_index)

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


def error_output(name, message):
    """An error output, as a cell that raised `name: message` leaves it."""
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
