"""The judge's round trip: each autograded test cell the course knows is graded by the
judge's verdict, decided in the grader's own process (coursekit.grading.grader).

The kernel runs the cell's visible code only (its output is kept, as the student saw it),
then the grader's request for observations, for seed 0 and a secret seed; the cell's
graded outcome is the judge's verdict, and the hidden part of the cell never reaches the
kernel. A row of cells that read the same observation shares one request. What looks like
tampering is recorded in the notebook's metadata and logged.
"""
import secrets

import nbformat
from nbclient.util import run_sync

from coursekit import record
from coursekit.course import grade_id, is_graded, is_solution
from coursekit.grading import grader
from coursekit.grading.outputcaps import CappedOutputs, error_output


class JudgedTestCells(CappedOutputs):
    """CappedOutputs whose autograded test cells the judge grades."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # The judge's state for one notebook (preprocess sets it up again for each).
        self._observed, self._findings, self._distrust = {}, [], None

    def preprocess(self, nb, resources=None, km=None):
        from nbgrader.coursedir import CourseDirectory

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

    async def async_execute_cell(self, cell, cell_index, execution_count=None,
                                 store_history=True):
        if self.is_judged(cell):
            return await self._judged(cell, cell_index, execution_count, store_history)
        if cell.cell_type == "code":
            self._observed.clear()  # the student's code may change what is observed
        return await super().async_execute_cell(cell, cell_index, execution_count,
                                                store_history)

    execute_cell = run_sync(async_execute_cell)

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
            cell.outputs.append(error_output(*first.raised))
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


def _grades(output):
    """Whether nbgrader reads a grade from this output (so only the judge may leave one)."""
    kind = output.get("output_type")
    return kind in ("error", "execute_result") or (kind == "stream"
                                                    and output.get("name") == "stderr")
