"""Output caps and stream merging of SandboxedExecute, fed scripted kernel messages.

A fake kernel replays a list of iopub messages, so stock nbclient and the course's
executor run the very same cell: ordinary output must come out identical, huge output cut
with a note, and merging must take linear time.
"""
import asyncio
import base64
import time

import nbformat
import pytest
from nbclient import NotebookClient

from coursekit.grading.outputcaps import terminal_text
from coursekit.grading.preprocessors import SandboxedExecute


class _Channel:
    def __init__(self, messages):
        self.messages = list(messages)

    async def get_msg(self, timeout=None):
        if not self.messages:
            await asyncio.sleep(3600)
        return self.messages.pop(0)


class _Kernel:
    """Just enough of a kernel client and manager for nbclient to run one cell."""

    def __init__(self, contents):
        parent = {"msg_id": "run"}
        iopub = [{"msg_type": kind, "header": {"msg_type": kind}, "parent_header": parent,
                  "content": content} for kind, content in contents]
        iopub.append({"msg_type": "status", "parent_header": parent,
                      "content": {"execution_state": "idle"}})
        self.iopub_channel = _Channel(iopub)
        self.shell_channel = _Channel([{"msg_type": "execute_reply", "parent_header": parent,
                                        "content": {"status": "ok", "execution_count": 1}}])

        self.executed = []

    def execute(self, code, *args, **kwargs):
        """The scripted cell first; then any cell of the grader's own (releasing what a
        failed cell held) runs at once, with no output."""
        self.executed.append(code)
        if len(self.executed) == 1:
            return "run"
        parent = {"msg_id": "own-%d" % len(self.executed)}
        self.iopub_channel.messages.append({"msg_type": "status", "parent_header": parent,
                                            "content": {"execution_state": "idle"}})
        self.shell_channel.messages.append({"msg_type": "execute_reply", "parent_header": parent,
                                            "content": {"status": "ok", "execution_count": 1}})
        return parent["msg_id"]

    async def is_alive(self):
        return True


def stream(text, name="stdout"):
    return "stream", {"name": name, "text": text}


def display(data):
    return "display_data", {"data": data, "metadata": {}}


def run(client, contents):
    """The cell's outputs once `client` has run it on messages `contents`."""
    cell = nbformat.v4.new_code_cell("anything")
    client.nb = nbformat.v4.new_notebook(cells=[cell])
    client.reset_execution_trackers()
    client.kc = client.km = _Kernel(contents)
    client.execute_cell(cell, 0)
    assert client.nb.cells[0] is cell
    return cell.outputs


def course(**caps):
    executor = SandboxedExecute(**caps)
    executor._stopped_because = None
    return executor


def stock():
    return NotebookClient(nbformat.v4.new_notebook(), coalesce_streams=True)


ORDINARY = {
    "one line": [stream("hello\n")],
    "many pieces": [stream("epoch %d loss %.3f\n" % (i, 1 / (i + 1))) for i in range(50)],
    "both streams": [stream("a\n"), stream("careful\n", "stderr"), stream("b\n"),
                     stream("again\n", "stderr")],
    "stderr first": [stream("warn\n", "stderr"), stream("out\n")],
    "around a figure": [stream("before\n"), display({"text/plain": "<Figure>",
                                                     "image/png": "iVBORw0KGgo="}),
                        stream("after\n")],
    "progress bar": [stream("\r%3d%%" % i) for i in range(0, 101, 5)] + [stream("\ndone\n")],
    "carriage returns": [stream("a\rb\r\nc\r"), stream("d\re\n\r\r\nx\ry\rz")],
    "backspaces": [stream("abc\b\bd\n"), stream("12\b3\b\b45\nno\b\b\bpe\n")],
    "both controls": [stream("ab\b\rcd\n"), stream("x\b\b\n")],
    "a result": [stream("x\n"), ("execute_result", {"data": {"text/plain": "0.5"},
                                                    "metadata": {}, "execution_count": 1})],
    "an error": [stream("x\n"), ("error", {"ename": "AssertionError", "evalue": "no",
                                           "traceback": ["AssertionError: no"]})],
}


@pytest.mark.parametrize("case", sorted(ORDINARY))
def test_ordinary_output_is_exactly_what_nbclient_makes(case):
    assert run(course(), ORDINARY[case]) == run(stock(), ORDINARY[case])


def test_after_a_failed_cell_the_grader_releases_what_it_held():
    from coursekit.grading.grader import RELEASE_FAILED_CELL

    for case, sent in (("an error", ["anything", RELEASE_FAILED_CELL]),
                       ("a result", ["anything"])):
        executor = course()
        run(executor, ORDINARY[case])
        assert executor.kc.executed == sent, case


@pytest.mark.parametrize("text", ["", "plain", "a\rb", "a\r\n", "a\r\rb\n", "\r\r\nq",
                                  "ab\b", "a\b\b", "\b\bx", "\n\bx", "ab\b\b\bc\n",
                                  "tq\rdm\b\b\r100%\n"])
def test_terminal_text_matches_nbclient(text):
    assert [o.text for o in run(course(), [stream(text)])] == [
        o.text for o in run(stock(), [stream(text)])]


def test_merging_a_huge_line_takes_linear_time():
    line = "7" * 10_000_000 + "\r" + "8" * 10_000_000 + "\r\n" + "9\r" * 1_000_000
    start = time.perf_counter()
    text = terminal_text(line)
    assert time.perf_counter() - start < 1.0
    assert text == "8" * 10_000_000 + "\r\n9\r"


def test_a_huge_line_is_cut_with_a_note_and_quickly():
    start = time.perf_counter()
    outputs = run(course(max_cell_output_bytes=100_000),
                  [stream("[0, 1, 2, " + "9" * 20_000_000 + "]\n")] + [
                      stream("more " * 1000) for _ in range(2000)])
    assert time.perf_counter() - start < 5
    assert len(outputs) == 1 and outputs[0].text.startswith("[0, 1, 2, 999")
    assert 100_000 <= len(outputs[0].text) < 100_200
    assert outputs[0].text.endswith(
        "\n[output cut: this cell's output came to 30 MB; grading keeps 100 KB of it]\n")


def test_a_huge_image_counts_and_is_dropped_with_a_note():
    alone = run(course(max_cell_output_bytes=1_000_000),
                [display({"image/png": "A" * 3_000_000})])
    assert [o.text for o in alone] == ["[output cut: this cell's output came to 3 MB, more "
                                       "than the 1 MB grading keeps of a cell]\n"]
    png = base64.b64encode(b"\x89PNG" + bytes(3_000_000)).decode()
    outputs = run(course(max_cell_output_bytes=1_000_000),
                  [display({"image/png": png, "text/plain": "<Figure>"}),
                   display({"image/png": "iVBORw0KGgo=", "text/plain": "<Figure>"})])
    assert [o.output_type for o in outputs] == ["display_data", "stream"]
    assert outputs[0].data["image/png"] == "iVBORw0KGgo="
    assert outputs[1].text == ("[output cut: this cell's output came to 4 MB; grading keeps "
                               "121 bytes of it]\n")


def test_past_the_caps_an_error_and_stderr_are_still_kept_so_a_failed_test_still_fails():
    huge = "x" * 2_000_000
    outputs = run(course(max_cell_output_bytes=1000),
                  [stream(huge), stream(huge, "stderr"),
                   ("error", {"ename": "AssertionError", "evalue": huge, "traceback": [huge]}),
                   ("execute_result", {"data": {"text/plain": "0"}, "metadata": {},
                                       "execution_count": 1})])
    kinds = [(o.output_type, o.get("name")) for o in outputs]
    assert kinds == [("stream", "stdout"), ("stream", "stderr"), ("error", None),
                     ("execute_result", None)]
    error = outputs[2]
    assert error.ename == "AssertionError" and len(error.evalue) == 500
    assert len(error.traceback[0]) < 1000
    assert outputs[3].data == {"text/plain": "0"}
    assert sum(len(o.get("text", "")) for o in outputs) < 3000


def test_the_notebook_cap_spans_cells_and_says_which_cap_cut():
    executor = course(max_cell_output_bytes=1_000_000, max_notebook_output_bytes=2_500_000)
    executor._notebook_kept = 0
    sizes = []
    for _ in range(4):
        outputs = run(executor, [stream("y" * 999 + "\n") for _ in range(900)])
        sizes.append(len(outputs[0].text))
    assert sizes[:2] == [900_000, 900_000]
    assert sizes[2] < 800_000 and sizes[3] < 300
    assert outputs[0].text.endswith("[output cut: this notebook's output passed the 2.5 MB "
                                    "grading keeps; this cell's came to 900 KB, and none of "
                                    "it is kept]\n")
