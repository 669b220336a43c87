"""Student code runs in a bubblewrap sandbox while nbgrader autogrades it.

nbgrader starts each submission's kernel in the instructor's account with the student's
folder as working directory: without a sandbox, a notebook can read `source/` (solutions
and hidden tests), other students' work and the gradebook, write anywhere, reach the
network and exhaust the machine. `SandboxedKernelManager` starts the kernel under
bubblewrap (Debian package `bubblewrap`) instead:

- the file system is the operating system and the Python environment, read-only, plus the
  student's own autograded folder (writable), a private scratch `/tmp`, and the grader's
  compiled checks (read-only: coursekit.grading.grader.checks_file); nothing else of the
  course exists inside;
- no network at all, loopback included (the kernel talks to nbgrader over Unix sockets in
  a private folder);
- its own process and IPC namespaces, no capabilities; when grading runs as root the
  kernel runs as an unprivileged user of its own (`Sandbox.first_uid`), because Linux
  never applies a process limit to root;
- limits per process (rlimits: address space, processes, CPU seconds, file size), and
  limits of the submission as a whole (coursekit.grading.limits: memory with `/tmp`, CPU time of
  every process, disk and files in its folder, wall-clock time of the notebook);
- when the kernel has stopped, anything its code left in the folder that is not a plain
  file (links, pipes, devices, hard links: coursekit.grading.folders) is removed before nbgrader
  reads, writes or chmods anything there.

Every limit is a `Sandbox` option in `nbgrader_config.py` (`c.Sandbox.memory_gib = 4`...).
"""
import os
import shutil
import sys
import tempfile

from jupyter_client.asynchronous import AsyncKernelClient
from jupyter_client.manager import AsyncKernelManager
from traitlets import Bool, Float, Integer, Unicode, default
from traitlets.config import LoggingConfigurable

from coursekit.grading import grader
from coursekit.grading.folders import describe, remove_foreign_entries
from coursekit.grading.limits import SubmissionLimits

INSTALL_HINT = "sudo apt-get install bubblewrap"
OPT_OUT = "--Sandbox.unsafe_run_without_sandbox=True"

# Runs inside the sandbox, before the kernel: set the limits, drop to the sandbox user,
# become the kernel. Passed inline so that no course file has to be visible inside.
LIMIT_AND_EXEC = """\
import os, resource, sys
memory, processes, cpu, file_size, uid = map(int, sys.argv[1:6])
no_user_namespaces = bytes.fromhex(sys.argv[6])
resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
resource.setrlimit(resource.RLIMIT_FSIZE, (file_size, file_size))
resource.setrlimit(resource.RLIMIT_NPROC, (processes, processes))
# Two CPU seconds past the watchdog's budget, which it checks four times a second: the
# watchdog stops the kernel first and names the budget in the stopped cell; the rlimit only
# backs it up (when it hit first, the cell could only say that the kernel died).
resource.setrlimit(resource.RLIMIT_CPU, (cpu + 2, cpu + 7))
resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
if os.getuid() == 0:
    os.setgroups([])
    os.setgid(uid)
    os.setuid(uid)
if no_user_namespaces:
    import ctypes
    libc = ctypes.CDLL(None, use_errno=True)
    class Program(ctypes.Structure):
        _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]
    code = ctypes.create_string_buffer(no_user_namespaces, len(no_user_namespaces))
    program = Program(len(no_user_namespaces) // 8, ctypes.addressof(code))
    # PR_SET_NO_NEW_PRIVS, then PR_SET_SECCOMP with SECCOMP_MODE_FILTER.
    if libc.prctl(38, 1, 0, 0, 0) or libc.prctl(22, 2, ctypes.byref(program), 0, 0):
        raise OSError(ctypes.get_errno(), "cannot install the seccomp filter")
os.execv(sys.argv[7], sys.argv[7:])
"""

# A seccomp filter (classic BPF, struct sock_filter) that refuses new user namespaces:
# unshare and clone with CLONE_NEWUSER get EPERM; clone3, whose flags a filter cannot
# read, gets ENOSYS, and glibc falls back to clone; x32 calls on x86_64 are refused.
_ARCHES = {"x86_64": (0xC000003E, 56, 272), "aarch64": (0xC00000B7, 220, 97)}
_CLONE3, _CLONE_NEWUSER, _X32 = 435, 0x10000000, 0x40000000


def no_user_namespaces_filter(machine=None):
    """The filter for this machine's architecture, or b"" where it is not known."""
    import platform
    import struct

    if (machine or platform.machine()) not in _ARCHES:
        return b""
    arch, clone, unshare = _ARCHES[machine or platform.machine()]
    load, equal, at_least, has_bits, give = 0x20, 0x15, 0x35, 0x45, 0x06
    allow, refuse, absent = 0x7FFF0000, 0x00050000 | 1, 0x00050000 | 38
    program = [
        (load, 0, 0, 4),                 # 0: the architecture
        (equal, 0, 7, arch),             # 1: another one: allow (9)
        (load, 0, 0, 0),                 # 2: the system call's number
        (at_least, 7, 0, _X32),          # 3: x32: absent (11)
        (equal, 6, 0, _CLONE3),          # 4: clone3: absent (11)
        (equal, 1, 0, unshare),          # 5: unshare: check its flags (7)
        (equal, 0, 2, clone),            # 6: clone: check its flags (7); else allow (9)
        (load, 0, 0, 16),                # 7: the first argument: the flags
        (has_bits, 1, 0, _CLONE_NEWUSER),  # 8: a new user namespace: refuse (10)
        (give, 0, 0, allow),             # 9
        (give, 0, 0, refuse),            # 10
        (give, 0, 0, absent),            # 11
    ]
    return b"".join(struct.pack("<HBBI", *instruction) for instruction in program)

# What the kernel may see of the grader's environment; everything else (tokens, database
# addresses, ...) stays outside.
PASSED_ENVIRONMENT = ("NBGRADER_EXECUTION", "PYDEVD_DISABLE_FILE_VALIDATION", "LANG", "LC_ALL",
                      "TZ")
SYSTEM_DIRECTORIES = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/etc")


class SandboxUnavailable(RuntimeError):
    """Autograding must not start: student code would run unconfined."""


class Sandbox(LoggingConfigurable):
    """Limits and switches of the sandbox, set as `c.Sandbox.*` in nbgrader_config.py."""

    memory_gib = Float(4.0, help="Address space a kernel may use, in GiB.").tag(config=True)
    max_processes = Integer(64, help="Processes and threads the kernel may run at once.").tag(
        config=True)
    cpu_seconds = Integer(600, help="CPU seconds one notebook may use in all, its child "
                          "processes included.").tag(config=True)
    file_mib = Integer(256, help="Largest file a notebook may write, in MiB.").tag(config=True)
    disk_mib = Integer(1024, help="Disk a notebook's folder and its kernel's home may "
                       "use together, in MiB.").tag(config=True)
    max_files = Integer(10000, help="Files and folders a notebook's folder and its kernel's "
                        "home may hold together.").tag(config=True)
    notebook_seconds = Integer(
        300, help="Wall-clock seconds one notebook may run, all cells together (a slow "
        "honest run takes well under 100).").tag(config=True)
    use_cgroups = Bool(
        True, help="Enforce memory (with /tmp) and processes of each submission as a whole "
        "with a cgroup, where this machine lets the grader make one; the watchdog of "
        "coursekit.grading.limits works either way.").tag(config=True)
    first_uid = Integer(
        1_000_000_000, help="When grading as root, each grading process runs its kernels "
        "as its own unprivileged user, first_uid + (pid modulo 100000): Linux counts the "
        "process limit per user, so kernels graded side by side must not share one.").tag(
        config=True)
    threads = Integer(
        1, help="Threads torch and numpy may use in a kernel. With more than one, sums are "
        "added in an order that depends on the machine's load, and the last printed digit "
        "of a variance can differ between gradings.").tag(config=True)
    bwrap = Unicode("bwrap", help="The bubblewrap program.").tag(config=True)
    unsafe_run_without_sandbox = Bool(
        False, help="Run student code with all the grader's rights: it can read the "
        "solutions, change grades and reach the network. Only for code you trust.").tag(
        config=True)

    def bwrap_path(self):
        return shutil.which(self.bwrap)

    def check(self):
        """Raise SandboxUnavailable unless student code can be confined (or the opt-out is on)."""
        if self.unsafe_run_without_sandbox or self.bwrap_path():
            return
        raise SandboxUnavailable(
            "Refusing to autograde: the sandbox program bubblewrap (`%s`) is not installed, "
            "and without it student code could read the solutions, change grades and reach "
            "the network. Install it with `%s`. To grade code you trust without a sandbox, "
            "pass %s." % (self.bwrap, INSTALL_HINT, OPT_OUT))

    @property
    def uid(self):
        return self.first_uid + os.getpid() % 100000

    def limits(self):
        return [str(int(self.memory_gib * 2**30)), str(self.max_processes),
                str(self.cpu_seconds), str(self.file_mib * 2**20), str(self.uid),
                no_user_namespaces_filter().hex()]

    def command(self, kernel_cmd, workdir, private, also_read_only=()):
        """`kernel_cmd` wrapped in bwrap: `workdir` and `private` writable, the system and
        `also_read_only` readable, nothing else."""
        read_only = [d for d in SYSTEM_DIRECTORIES if os.path.isdir(d)] + list(also_read_only)
        for prefix in {sys.prefix, sys.base_prefix, sys.exec_prefix,
                       os.path.dirname(os.path.dirname(os.path.realpath(sys.executable)))}:
            if not any(_inside(prefix, d) for d in read_only):
                read_only.append(prefix)
        args = [self.bwrap_path(), "--unshare-ipc", "--unshare-pid", "--unshare-net",
                "--unshare-uts", "--unshare-cgroup-try", "--die-with-parent",
                "--hostname", "sandbox", "--proc", "/proc", "--dev", "/dev",
                # /tmp lives in RAM: never bigger than the memory allowance.
                "--perms", "1777", "--size", str(int(self.memory_gib * 2**30)),
                "--tmpfs", "/tmp", "--clearenv"]
        if os.geteuid() == 0:
            # Only to drop to the sandbox user; LIMIT_AND_EXEC gives them up at once.
            args += ["--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID"]
        made = set()
        for path, how in sorted([(p, "--ro-bind") for p in read_only]
                                + [(workdir, "--bind"), (private, "--bind")]):
            # bwrap would create missing parents as 0700, out of the sandbox user's reach.
            for parent in _parents(path):
                if parent not in made and not any(_inside(parent, d) for d in read_only):
                    args += ["--perms", "0755", "--dir", parent]
                    made.add(parent)
            args += [how, path, path]
            made.add(path)
        bin_dir = os.path.dirname(sys.executable)
        environment = {"HOME": private, "MPLCONFIGDIR": os.path.join(private, "matplotlib"),
                       "PATH": "%s:/usr/local/bin:/usr/bin:/bin" % bin_dir,
                       # The grader's pid means nothing in the sandbox's pid namespace; 1
                       # says "no parent to watch" (--die-with-parent does that) and keeps
                       # ipykernel from printing its Ctrl-C note into the grading log.
                       "JPY_PARENT_PID": "1"}
        environment.update({k: os.environ[k] for k in PASSED_ENVIRONMENT if k in os.environ})
        environment.update({name: str(self.threads) for name in (
            "OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")})
        for name, value in sorted(environment.items()):
            args += ["--setenv", name, value]
        args += ["--chdir", workdir, "--", sys.executable, "-c", LIMIT_AND_EXEC]
        return args + self.limits() + kernel_cmd


def _inside(path, directory):
    return path == directory or path.startswith(directory.rstrip("/") + "/")


def _parents(path):
    parts = path.strip("/").split("/")[:-1]
    return ["/" + "/".join(parts[:i + 1]) for i in range(len(parts))]


def _student_of(workdir):
    """The student whose autograded/<student>/<assignment> folder this is."""
    return os.path.basename(os.path.dirname(os.path.normpath(workdir)))


def _chown_tree(top, uid, gid):
    os.lchown(top, uid, gid)
    for folder, dirs, files in os.walk(top):
        for name in dirs + files:
            os.lchown(os.path.join(folder, name), uid, gid)


class PromptKernelClient(AsyncKernelClient):
    """A kernel client that closes at once.

    jupyter_client gives each socket a one-second linger; when nbclient stops the
    channels after grading, the kernel is gone and that wait added about half a second
    to every graded notebook. Nothing left unsent matters then.
    """

    def stop_channels(self):
        for name in ("_shell_channel", "_iopub_channel", "_stdin_channel", "_hb_channel",
                     "_control_channel"):
            socket = getattr(getattr(self, name, None), "socket", None)
            if socket is not None and not socket.closed:
                socket.linger = 0
        super().stop_channels()


class SandboxedKernelManager(AsyncKernelManager):
    """A kernel manager whose kernels run inside the course's bubblewrap sandbox."""

    @default("client_class")
    def _default_client_class(self):
        return "coursekit.grading.sandbox.PromptKernelClient"

    @default("transport")
    def _default_transport(self):
        # The sandbox has no network, loopback included: Unix sockets cross into it.
        return "ipc"

    # What enforces the limits of the whole submission (make bench swaps it out to
    # measure what it costs).
    limits_class = SubmissionLimits
    _private = None
    _workdir = None
    _workdir_owner = None
    _limits = None

    async def _async_pre_start_kernel(self, **kw):
        sandbox = Sandbox(parent=self)
        sandbox.check()
        # A SIGINT to the process group would stop bwrap itself; ipykernel's control
        # thread turns an interrupt message into a SIGINT inside the sandbox instead.
        self.kernel_spec.interrupt_mode = "message"
        self._private = tempfile.mkdtemp(prefix="udl-kernel-")
        self.connection_file = os.path.join(self._private, "kernel.json")
        self.ip = os.path.join(self._private, "ipc")
        kernel_cmd, kw = await super()._async_pre_start_kernel(**kw)
        self._workdir = os.path.abspath(kw.get("cwd") or os.getcwd())
        self._limits = self.limits_class(sandbox, self._workdir, self._private)
        if sandbox.unsafe_run_without_sandbox:
            self.log.warning("UNSAFE: student code runs WITHOUT a sandbox (%s is set).", OPT_OUT)
            return self._limits.wrap(kernel_cmd), kw
        if os.geteuid() == 0:
            status = os.stat(self._workdir)
            self._workdir_owner = (status.st_uid, status.st_gid)
            for path in (self._private, self._workdir):
                _chown_tree(path, sandbox.uid, sandbox.uid)
        # The grader's requests load the checks from this folder (coursekit.grading.grader).
        checks = os.path.dirname(grader.checks_file()[0])
        return self._limits.wrap(sandbox.command(kernel_cmd, self._workdir, self._private,
                                                 also_read_only=[checks])), kw

    async def _async_launch_kernel(self, kernel_cmd, **kw):
        await super()._async_launch_kernel(kernel_cmd, **kw)
        self._limits.watch(self.provisioner.process.pid)

    def why_it_died(self):
        """The budget whose passing stopped the kernel, or None."""
        return self._limits.why_it_died() if self._limits else None

    def why_it_is_stuck(self):
        """The budget a kernel that stopped answering sits at (its memory), or None."""
        return (self._limits.memory_reason() if self._limits and self._limits.at_memory_limit()
                else None)

    def _close_control_socket(self):
        # As in PromptKernelClient: the kernel is gone, nothing left unsent matters.
        if self._control_socket is not None:
            self._control_socket.linger = 0
        super()._close_control_socket()

    async def _async_cleanup_resources(self, restart=False):
        await super()._async_cleanup_resources(restart=restart)
        if self._limits is not None:
            # No process of the submission is left after this: nothing can change the
            # folder while it is cleaned and handed back to nbgrader.
            self._limits.close()
            self._limits = None
        if self._workdir is not None:
            removed = remove_foreign_entries(self._workdir)
            if removed:
                self.log.warning(
                    "%s: removed what the notebook's code left in its folder that is not a "
                    "plain file, unfollowed: %s", _student_of(self._workdir),
                    describe(removed, self._workdir))
        if self._workdir_owner is not None:
            _chown_tree(self._workdir, *self._workdir_owner)
            self._workdir_owner = None
        if self._private is not None:
            shutil.rmtree(self._private, ignore_errors=True)
            self._private = None

    cleanup_resources = _async_cleanup_resources
