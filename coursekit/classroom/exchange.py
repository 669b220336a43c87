"""nbgrader's exchange for this course: where students fetch the release and hand in.

The exchange is a folder on the machine every student and the instructor share
(``c.Exchange.root``; nbgrader's default is ``/usr/local/share/nbgrader/exchange``). The
instructor's ``release_assignment`` puts the release in ``<root>/<course id>/outbound/``;
each student's ``submit`` drops a copy into ``inbound/``, which ``collect`` copies to
``submitted/<student>/bn/``; ``release_feedback`` puts each page in ``feedback/``, whence
only its student's ``fetch_feedback`` takes it. What keeps students apart:

- the root is world-writable, so it must have the sticky bit (mode 1777, like /tmp):
  without it any student can rename the course's folder and put a fake one in its place
  (nbgrader itself creates a missing root 0777, without the bit). ``create_root`` does it;
- ``inbound/`` (0733) can be written and not listed: nobody finds another's submission,
  named ``<student>+bn+<time>+<random>``; but whoever learns that name can read and change
  it (``submit`` makes it 0777);
- anyone can also drop a folder there named for *another* student, or one holding links
  to files only the instructor may read. Stock ``collect`` only warns about the first and
  follows the links; ``CourseCollect`` (nbgrader_config.py) sets both aside, and
  submissions whose name or ``timestamp.txt`` carries no readable time, with one line
  each, and collects the student's latest acceptable submission instead;
- a student can change their submission at any moment, collect included: a check of the
  inbound folder says nothing about what a later copy reads. So ``CourseCollect`` first
  copies each submission, following no link (``folders.copy_unfollowed``), into a folder
  only the instructor can enter, checks that copy (its owner, links, special files, hard
  links, other users' files, ``timestamp.txt``) and hands nbgrader only the copy;
- ``feedback/`` (0711) cannot be listed either; each page is named by a hash of the
  secret its submission carries, kept in the student's nbgrader cache in their home and in
  the course folder. So students' homes and the course folder must be private (0700).

``python -m coursekit.classroom.exchange /srv/nbgrader/exchange`` prints the nbgrader config that
students need (the exchange and the course id), for ``/etc/jupyter/nbgrader_config.py``
(every user of the machine) or each student's ``~/.jupyter/nbgrader_config.py``.
"""
import datetime
import glob
import os
import pwd
import shutil
import sys
import tempfile

from nbgrader.exchange.default.release_feedback import ExchangeReleaseFeedback
from nbgrader.utils import parse_utc

from coursekit.course import COURSE_ID
from coursekit.escape import printable
from coursekit.grading.feedback import RELEASE_FILES
from coursekit.grading.folders import (Foreign, Unfit, copy_unfollowed, describe, foreign_entries,
                                       read_plain_file)
from coursekit.grading.intake import unreadable_timestamp
from coursekit.grading.nbgrader_compat import CollectHooks

# Sorts before every real submission time.
NEVER = datetime.datetime(1, 1, 1, tzinfo=datetime.timezone.utc)



def student_config(exchange_root, course=COURSE_ID):
    """The text of the nbgrader_config.py that lets a student fetch, submit and fetch
    feedback for this course through the exchange at `exchange_root`."""
    from coursekit.classroom import studentconfig

    return ('"""nbgrader for the students of %(course)s: where its exchange is, the\n'
            "course's report in Validate, no instructor tools in a student's JupyterLab.\"\"\"\n"
            "c = get_config()  # noqa: F821\n"
            "c.Exchange.root = %(root)r\n"
            "c.CourseDirectory.course_id = %(course)r\n"
            % {"root": str(exchange_root), "course": course}) + studentconfig.config_text()


def create_root(path):
    """The exchange's root, world-writable with the sticky bit (1777)."""
    os.makedirs(path, exist_ok=True)
    os.chmod(path, 0o1777)
    return path


class CourseCollect(CollectHooks):
    """nbgrader's collect, which takes no submission a student could not have made, and
    reads each submission once, into a private copy that every check and nbgrader's own
    copy then read."""

    def start(self):
        # In the course folder (on disk, where submitted/ is, not a RAM /tmp); 0700, so
        # nobody else can reach a copy between its check and nbgrader's copy of it.
        self.staging = tempfile.mkdtemp(prefix=".collect-",
                                        dir=os.path.abspath(self.coursedir.root))
        try:
            return super().start()
        finally:
            shutil.rmtree(self.staging, ignore_errors=True)

    def init_src(self):
        self.set_aside = []  # every submission refused, the latest or not
        super().init_src()

    def _staged(self, filename):
        return os.path.join(self.staging, filename)

    def submission_record(self, path):
        name = os.path.basename(path)
        parts = name.rsplit("+", 3)
        record = {"username": parts[0], "filename": name, "timestamp": NEVER}
        try:
            record["timestamp"] = parse_utc(parts[2])
        except Exception:  # a name a student made up
            record["refused"] = "its name carries no readable time"
        else:
            try:
                record["refused"] = take(path, self._staged(name), parts[0],
                                         1000 * self.coursedir.max_dir_size)
            except Exception as error:  # one student's folder never stops the class
                record["refused"] = "it could not be checked (%s: %s)" % (
                    type(error).__name__, error)
        if record["refused"]:
            self.set_aside.append(record)
        return record

    def latest_first(self, records):
        # The latest acceptable submission first; one set aside only when nothing else is.
        return sorted(records, key=lambda r: (not r["refused"], r["timestamp"]), reverse=True)

    def copy_files(self):
        for record in sorted(self.set_aside, key=lambda r: r["filename"]):
            self.log.error("%s: %s in the exchange was set aside, not collected: %s",
                           *(printable(record[key]) for key in ("username", "filename",
                                                                "refused")))
        self.src_records = [r for r in self.src_records if not r["refused"]]
        super().copy_files()

    def do_copy(self, src, dest, log=None):
        # nbgrader names the inbound folder; it gets the checked copy of it instead.
        staged = self._staged(os.path.basename(src))
        if not os.path.isdir(staged):
            raise RuntimeError("%s was not copied and checked before collecting" % src)
        super().do_copy(staged, dest, log)


def take(path, copy, student, max_bytes=None):
    """Copy the inbound submission folder `path` to `copy` (which must not exist), following
    no link, and say why the copy cannot be collected for `student` (and delete it), or
    return None."""
    refused = refusal(path, copy, student, max_bytes)
    if refused:
        shutil.rmtree(copy, ignore_errors=True)
    return refused


def refusal(path, copy, student, max_bytes=None):
    """Why the submission `path` in the inbound, copied to `copy` here, cannot be collected
    for `student`, or None. Everything but the owner of `path` is judged on the copy: the
    student can change `path` at any moment, and a check of it proves nothing about what
    is read next."""
    try:
        uid = os.lstat(path).st_uid
        owner = pwd.getpwuid(uid).pw_name
    except (OSError, KeyError):
        owner = None
    if owner != student:
        return "it belongs to %s, not %s" % (owner or "an unknown user", student)
    try:
        # copy_unfollowed judges what it reads, on the descriptor it reads it from;
        # foreign_entries, on the copy, would catch a copier that let something through.
        found = copy_unfollowed(path, copy, uid, max_bytes) or [
            Foreign(os.path.join(path, os.path.relpath(item.path, copy)), item.kind)
            for item in foreign_entries(copy)]
    except Unfit as unfit:
        return str(unfit)
    except OSError as error:  # a name too long for the copy's path, say
        return "it could not be copied (%s)" % error
    if found:
        return ("it holds a link, a special file or a file that is not %s's own (%s)"
                % (student, describe(found, os.path.dirname(path))))
    stamp = read_plain_file(os.path.join(copy, "timestamp.txt"), 200)
    if stamp is None:
        return "it has no timestamp.txt"
    if not stamp.strip() or unreadable_timestamp(copy):
        return "its timestamp.txt holds no readable time"
    return None


class CourseReleaseFeedback(ExchangeReleaseFeedback):
    """nbgrader's release_feedback, which skips (and names) a student whose feedback has no
    submission time and secret (not handed in through the exchange), instead of stopping
    everyone after them.

    Unlike collect it reads no folder a student can write: feedback/ is the instructor's,
    filled by generate_feedback with the pages and two small files read unfollowed
    (coursekit.grading.feedback), and it writes into the exchange's feedback/, which nbgrader
    makes the instructor's and students cannot list or write."""

    def copy_files(self):
        folder = self.coursedir.format_path(self.coursedir.feedback_directory, "*",
                                            self.coursedir.assignment_id)
        unreleasable = sorted(
            os.path.basename(os.path.dirname(path)) for path in glob.glob(folder)
            if not all(os.path.isfile(os.path.join(path, name)) for name in RELEASE_FILES))
        for student in unreleasable:
            self.log.warning("%s: no feedback released: the submission did not come through "
                             "the exchange (no %s)", student, " or ".join(RELEASE_FILES))
        excluded = set(filter(None, (self.coursedir.student_id_exclude or "").split(",")))
        self.coursedir.student_id_exclude = ",".join(sorted(excluded | set(unreleasable)))
        super().copy_files()


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python -m coursekit.classroom.exchange EXCHANGE_ROOT  (prints the "
                 "students' nbgrader_config.py)")
    sys.stdout.write(student_config(sys.argv[1]))
