"""What every student's nbgrader loads, in whatever folder JupyterLab was started.

nbgrader reads `nbgrader_config.py` from the folder it runs in and from Jupyter's config
folders (`~/.jupyter`, the virtualenv's `etc/jupyter`, `/etc/jupyter`). The course's own
config is only in the course folder; a student who starts JupyterLab in `release/bn/`, or
in a JupyterHub home with the fetched `bn/`, never loads it. So the text `config_text()`
returns goes where nbgrader finds it for every user: `make` appends it to the fail-closed
guard it installs in the virtualenv (coursekit/grading/failclosed.py), and `python -m
coursekit.classroom.exchange` prints it in the students' config. It carries, as readable code:

- coursekit/grading/validate.py: `nbgrader validate` and the Validate button report every check
  with ✓ or ✗, its message and points, and the total; with it go the two modules it
  imports, coursekit/grading/nbgrader_compat.py and coursekit/grading/verdicts.py;
- this module: a student's JupyterLab shows no Formgrader and no Create Assignment.
  Those tools act on the course folder whose nbgrader_config.py is in the server's
  working folder (the formgrader shows the course found there), so they stay in a
  JupyterLab started there, the instructor's.

None of them imports anything of the course's: the course folder is private, and a
student's nbgrader cannot import it. Loading one never stops nbgrader: an error is
logged and nbgrader goes on as stock.
"""
import os
import sys
from pathlib import Path

# nbgrader's JupyterLab plugins that only an instructor uses.
INSTRUCTOR_TOOLS = ("@jupyter/nbgrader:formgrader", "@jupyter/nbgrader:create-assignment")
COURSE_CONFIG = "nbgrader_config.py"
QUOTES = "'" * 3
# The modules the config carries, and the names it loads them under.
# (its name in a student's nbgrader, its file in this package)
# validate.py finds its two neighbours under this prefix, loaded before it.
CARRIED = (("udl_bn_nbgrader_compat", "grading/nbgrader_compat.py"),
           ("udl_bn_verdicts", "grading/verdicts.py"),
           ("udl_bn_validate", "grading/validate.py"),
           ("udl_bn_studentconfig", "classroom/studentconfig.py"))


def instructor_tools_here(folder=None):
    """Whether a JupyterLab serving from `folder` (its working folder) keeps the
    instructor's tools: a course's nbgrader config is there."""
    return os.path.isfile(os.path.join(folder or os.getcwd(), COURSE_CONFIG))


def without_instructor_tools(page_config):
    """JupyterLab's page config, with the instructor's plugins disabled unless the server
    runs in a course folder."""
    if not instructor_tools_here():
        disabled = page_config.get("disabledExtensions")
        disabled = list(disabled) if isinstance(disabled, (list, tuple)) else []
        page_config["disabledExtensions"] = disabled + [
            tool for tool in INSTRUCTOR_TOOLS if tool not in disabled]
    return page_config


def hide_instructor_tools():
    """In a Jupyter server (nbgrader's formgrader extension loads the config files when
    the server starts), disable the instructor's plugins on every JupyterLab page the
    server sends from outside a course folder. Elsewhere (an nbgrader command), nothing."""
    serverapp = sys.modules.get("jupyter_server.serverapp")
    if serverapp is None or not serverapp.ServerApp.initialized():
        return
    web_app = getattr(serverapp.ServerApp.instance(), "web_app", None)
    if web_app is None:
        return
    previous = web_app.settings.get("page_config_hook")
    if getattr(previous, "course_hook", False):
        return  # loaded again (the Validate button reads the config on every click)

    def hook(handler, page_config):
        if previous is not None:
            page_config = previous(handler, page_config)
        return without_instructor_tools(page_config)

    hook.course_hook = True
    web_app.settings["page_config_hook"] = hook


def install():
    hide_instructor_tools()


def config_text():
    """Config code that loads the modules of CARRIED from their own text, in order, each
    under its name there, and installs those that have an install(); a failure is logged,
    never raised."""
    package = Path(__file__).resolve().parent.parent
    parts = ['\n# --- The course\'s report in Validate, and no instructor tools in a student\'s\n'
             '# JupyterLab (coursekit/classroom/studentconfig.py, coursekit/grading/validate.py\n'
             '# and the two modules it imports, in the course\'s repository, word for word). ---\n'
             'def _udl_bn_load(name, text):\n'
             '    import sys, types\n'
             '    from traitlets.log import get_logger  # the running nbgrader app\'s log\n'
             '    try:\n'
             '        module = types.ModuleType(name)\n'
             '        sys.modules[name] = module\n'
             '        exec(compile(text, name + ".py", "exec"), module.__dict__)\n'
             '        getattr(module, "install", lambda: None)()\n'
             '    except Exception:\n'
             '        get_logger().exception(\n'
             '            "The course\'s %s did not load; nbgrader goes on without it.", name)\n'
             '\n\n']
    for name, filename in CARRIED:
        text = (package / filename).read_text()
        # A raw string in three single quotes: the code reads as it is, so no carried
        # module may hold three in a row (this one spells them QUOTES).
        if QUOTES in text or text.endswith("\\"):
            raise ValueError("%s cannot be carried in a raw string of %s" % (filename, QUOTES))
        parts.append("_udl_bn_load(%r, r%s%s%s)\n\n" % (name, QUOTES, text, QUOTES))
    return "".join(parts)


if __name__ == "__main__":
    sys.stdout.write(config_text())
