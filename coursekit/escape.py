"""Text from outside (student ids, names, comments) shown as itself where the instructor
reads it: a terminal, a log, a spreadsheet."""
import re

# A cell starting with one of these is a formula to Excel, LibreOffice or Google Sheets.
FORMULA_START = ("=", "+", "-", "@", "\t", "\r", "\n", "\0")


def printable(value, keep=""):
    """`value` as text that shows as itself wherever the instructor reads it (a terminal,
    a log, a spreadsheet): each control character (C0, DEL, C1), bidirectional control
    and line separator is written as a visible escape such as \\x1b or \\u202e, except
    those in `keep`.

    Student ids are folder names the student chooses through the exchange, and reach the
    grading output raw otherwise: an escape sequence there rewrites the instructor's
    terminal, and a right-to-left override shows a name that is not the id. The id itself
    is never changed (nbgrader keys the gradebook on it): only what is printed.
    """
    text = "" if value is None else str(value)
    return _UNSAFE.sub(lambda found: found.group() if found.group() in keep
                       else "\\x%02x" % ord(found.group()) if ord(found.group()) < 0x100
                       else "\\u%04x" % ord(found.group()), text)


# C0, DEL and C1; Unicode's bidirectional controls (marks, embeddings, overrides,
# isolates); the line and paragraph separators, which some viewers break lines at.
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e"
                     "\u2066-\u2069\u2028\u2029]")
# What a cell of free text (a name, a comment, a section) may hold as itself: its lines.
LINE_BREAKS = "\t\r\n"


def neutralize(value, keep=LINE_BREAKS):
    """`value` as text a spreadsheet shows as text, never runs as a formula, with its control
    characters escaped but for those in `keep` (a student id keeps none)."""
    text = printable(value, keep)
    return "'" + text if text.startswith(FORMULA_START) else text
