"""The grader's audit hook in the student's kernel: while the checks observe the student's
code, that code cannot reach the checks' own frames.

An observer keeps what it has seen (a step count, a list of batch-norm calls) in its own
frame while it calls the student's function; from inside that function, a frame walk
(``sys._getframe(1).f_locals``, a traceback's ``tb_frame``) leads to it. Python raises an
audit event for each way to reach a frame or to search the interpreter's objects, and an
audit hook cannot be removed once added. So the grader runs ``install`` in each kernel
before the notebook's first cell (coursekit.preprocessors), and the hook, first in line:

- refuses every later audit hook, and any search of the interpreter's objects
  (``gc.get_objects`` and its kin), which is the only way to reach the hook itself;
- refuses the frame of a generator or coroutine (``gi_frame``, or ``sys._getframe`` from
  inside one): such a frame, kept from earlier, is resumed inside an observation;
- refuses the interpreter's own C functions through ctypes (``pythonapi``);
- while an observation runs, refuses every way to reach a frame, and reading memory at an
  address.

What it refused it keeps, and hands the grader's request sealed with a key that only the
grader and the hook know (HMAC): a kernel that replaced ``sys.audit``, or a hook that never
ran, cannot produce the seal. Nothing here decides a grade; the grader believes nothing
from a kernel whose seal is missing or lists a refusal.

This file is sent as text and run in the kernel; it imports nothing of the course.
"""

OBSERVE, OBSERVED = "udl_bn.observe", "udl_bn.observed"


def install(key):
    import _thread
    import hashlib
    import hmac
    import json
    import os
    import sys

    tokens, refused, busy = [], [], set()
    generator_flags = 0x20 | 0x80 | 0x200  # CO_GENERATOR, CO_COROUTINE, CO_ASYNC_GENERATOR
    try:  # a cell's own code runs below IPython's run_code: the frames above are IPython's
        from IPython.core.interactiveshell import InteractiveShell
        cell_top = InteractiveShell.run_code.__code__
    except Exception:
        cell_top = None
    # Library functions that ask for a frame only to read its name or globals, or to print
    # the stack as text; torch.manual_seed is one that calls format_stack.
    import collections
    import traceback
    import typing
    safe_callers = {traceback.format_stack.__code__, traceback.extract_stack.__code__,
                    collections.namedtuple.__code__}
    for module, name in ((typing, "_caller"), (sys.modules.get("typing_extensions"),
                                               "_has_generic_or_protocol_as_origin"),
                         (sys.modules.get("typing_extensions"), "_caller")):
        function = getattr(module, name, None)
        if hasattr(function, "__code__"):
            safe_callers.add(function.__code__)
    searches = {"gc.get_objects", "gc.get_referrers", "gc.get_referents"}
    frame_calls = {"sys._getframe", "sys._getframemodulename", "sys._current_frames",
                   "sys._current_exceptions"}
    generator_frames = {"gi_frame", "cr_frame", "ag_frame"}
    # Reading memory at an address: an observer's locals, whatever guards its frames.
    memory = {"ctypes.cdata", "ctypes.cdata/buffer", "ctypes.string_at", "ctypes.wstring_at",
              "ctypes.addressof"}

    def notebook_code(code):
        name = code.co_filename
        return name.startswith("<") or "/ipykernel_" in name

    def in_generator(frame):
        """Whether the notebook's own generator is on the stack below the cell."""
        for _ in range(300):
            if frame is None or frame.f_code is cell_top:
                return False
            if frame.f_code.co_flags & generator_flags and notebook_code(frame.f_code):
                return True
            frame = frame.f_back
        return False

    def why_refused(event, args):
        if event == "sys.addaudithook":
            return "added an audit hook"
        if event in searches:
            return "searched the interpreter's objects (%s)" % event
        if event == "object.__getattr__" and len(args) == 2:
            code = getattr(args[0], args[1][:2] + "_code", None)
            if args[1] in generator_frames and (code is None or notebook_code(code)):
                return "reached a generator's frame (%s)" % args[1]
            if args[1] == "tb_frame" and (tokens or in_generator(args[0].tb_frame)):
                return "reached a frame through a traceback (tb_frame)"
            return None
        if event == "sys._getframe" and args and (tokens or in_generator(args[0])):
            # Frames: this function's (0), the hook's (1), then whoever called _getframe.
            if sys._getframe(2).f_code in safe_callers:
                return None
            return "reached a frame (sys._getframe)"
        if event == "ctypes.dlsym" and len(args) == 2 and str(args[1]).startswith(("Py", "_Py")):
            return "reached the interpreter's C functions (%s)" % args[1]
        if tokens and (event in frame_calls or event in memory):
            return "reached frames or memory while the checks ran (%s)" % event
        return None

    def seal(nonce):
        text = json.dumps([nonce, refused])
        return [hmac.new(key, text.encode(), hashlib.sha256).hexdigest(), list(refused)]

    def hook(event, args):
        if event == OBSERVE and args and isinstance(args[0], list):
            tokens.append(int.from_bytes(os.urandom(16), "big"))
            args[0].append(tokens[-1])
            return
        if event == OBSERVED and len(args) == 3 and isinstance(args[2], list):
            token, nonce, box = args
            if not tokens or tokens[-1] != token:
                refused.append("changed the grader's guard")
            if token in tokens:
                del tokens[tokens.index(token):]
            box.extend(seal(str(nonce)))
            return
        me = _thread.get_ident()
        if me in busy:  # what the hook itself does raises events too
            return
        busy.add(me)
        try:
            why = why_refused(event, args)
        except Exception:
            why = None
        finally:
            busy.discard(me)
        if why:
            if len(refused) < 20:
                refused.append(why)
            raise RuntimeError("While it is graded, code in a notebook may not do this: "
                               "it %s." % why)

    sys.addaudithook(hook)


def seal_of(key, nonce, refused):
    """The seal the hook gives for `refused`, as the grader computes it."""
    import hashlib
    import hmac
    import json

    return hmac.new(key, json.dumps([nonce, refused]).encode(), hashlib.sha256).hexdigest()
