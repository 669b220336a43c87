"""Autograding refuses to run unless the course's nbgrader_config.py loaded in full.

nbgrader reads its config files one by one; when one raises, it logs "Exception while
loading config file" and carries on with stock settings, and stock nbgrader runs student
code as the instructor, with no sandbox. So the course's grading must not depend on its
config loading. `make` copies this file into the virtualenv as
`etc/jupyter/nbgrader_config.py`, which every nbgrader command, the API and the Jupyter
server (formgrader) load before the course's own config; coursekit.grading.parallel imports it
first. It puts an autograde that refuses in nbgrader's place. The course's config then
puts `CourseAutograde` there (coursekit.grading.autograde.install), which itself refuses to grade
without the sandbox. A config that raises, or that never installs the course's grading,
leaves the refusal in place.

`make` appends to its copy what every student's nbgrader loads
(coursekit/classroom/studentconfig.py), after `install()` below: that part catches its own
errors, so the refusal is in place before it runs and stays whatever it does
(tests/test_studentconfig.py).
"""
from nbgrader.apps import api, autogradeapp
from nbgrader.converters import Autograde, NbGraderException

REFUSAL = ("Refusing to autograde: the course's nbgrader_config.py did not load (see the "
           "error above) or does not install the course's grading, so student code would "
           "run without its sandbox. Fix the config, then autograde again.")


class ConfigNotLoaded(Autograde):
    """Stands in for nbgrader's autograde until the course's config replaces it."""

    def start(self):
        self.log.error(REFUSAL)
        raise NbGraderException(REFUSAL)


def install():
    # Only over stock nbgrader: the course's own autograde, once installed, stays.
    if autogradeapp.Autograde is Autograde:
        autogradeapp.Autograde = ConfigNotLoaded
    if api.Autograde is Autograde:
        api.Autograde = ConfigNotLoaded


install()
