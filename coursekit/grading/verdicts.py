"""A check's verdict in words, the same wherever a person reads it: the grader reading back
what the judge printed, the feedback pages, and Validate.

    ✗ used, 0 of 2 points: forward calls no BatchNorm1d layer. Each of the five ...

The kernel prints it (coursekit.kernel.judge.wrapped, coursekit.kernel.checks.points_text:
the checks cannot import this package there); tests/test_validate.py keeps the twins
alike. It imports nothing of the course's: a student's nbgrader config carries it word for
word, with validate.py (coursekit/classroom/studentconfig.py).
"""
import re
import textwrap

from nbconvert.filters import strip_ansi

PASSED, FAILED = "✓", "✗"
# Messages are broken between words at this width, as the checks print them in the kernel
# (coursekit.kernel.judge.MESSAGE_WIDTH).
MESSAGE_WIDTH = 88
# A check's printed verdict (checks.score): its mark, then its message, wrapped onto
# indented lines.
VERDICT_LINE = re.compile(r"^([✓✗]) (.*(?:\n  .*)*)$", re.MULTILINE)
# What a verdict line says before its message: the check's name and the points the
# notebook's kernel gave it ("used, 0 of 2 points: "). The points shown are the grade's,
# from nbgrader; the kernel's own claim is left out.
POINTS_SAID = re.compile(r"^\w+, [\d.]+ of [\d.]+ points?: ")


def points(count):
    """"1 point", "2.5 points"."""
    return "%g point%s" % (count, "" if count == 1 else "s")


def points_text(earned, possible):
    """"0 of 2 points"."""
    return "%g of %s" % (earned, points(possible))


def test_name(grade_id):
    """A check's name as students read it: "used" for the grade id "test_used"."""
    return grade_id[len("test_"):] if grade_id.startswith("test_") else grade_id


def wrapped(text, indent="  ", width=MESSAGE_WIDTH):
    """`text` broken between words only (a word longer than `width` keeps its own line),
    later lines indented: JupyterLab and the feedback page would break it mid-word."""
    return textwrap.fill(text, width=width, subsequent_indent=indent, break_long_words=False,
                         break_on_hyphens=False)


def one_line(text):
    return " ".join(text.split())


def printed_verdicts(outputs):
    """[(✓ or ✗, message)] that the checks printed in these outputs, each message on one
    line again."""
    text = "".join(o.get("text") for o in outputs if o.get("output_type") == "stream"
                   and isinstance(o.get("text"), str))
    return [(mark, POINTS_SAID.sub("", one_line(message)))
            for mark, message in VERDICT_LINE.findall(text)]


def error_text(error):
    """What an error output says: an AssertionError's message alone (the hidden tests
    raise the visible check's own message), any other error with its type."""
    ename, evalue = error.get("ename") or "Error", one_line(strip_ansi(error.get("evalue") or ""))
    if ename == "AssertionError" and evalue:
        return evalue
    return "%s: %s" % (ename, evalue) if evalue else ename


def message(outputs, passed):
    """Why a check cell passed or failed, from the outputs it left; whether it passed is
    the grade's to say, not the outputs'."""
    said = printed_verdicts(outputs)
    if passed:
        return " ".join(text for mark, text in said if mark == PASSED) or "This check passed."
    error = next((o for o in outputs if o.get("output_type") == "error"), None)
    if error is not None:
        return error_text(error)
    failing = [text for mark, text in said if mark == FAILED]
    if failing:
        return " ".join(failing)
    stderr = [line for o in outputs if o.get("output_type") == "stream"
              and o.get("name") == "stderr" for line in strip_ansi(o.get("text") or "")
              .splitlines() if line.strip()]
    if stderr:
        return ("This check wrote to stderr, which grading counts as failing: %s"
                % stderr[-1].strip())
    return "This check did not pass."
