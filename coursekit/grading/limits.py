"""Limits of one submission as a whole, not of each of its processes.

The rlimits the sandbox sets (coursekit.grading.sandbox) hold per process: a notebook could spread
its work over child processes, or fill the RAM-backed `/tmp`, and pass them. For each
kernel, `SubmissionLimits` adds:

- a cgroup, where the machine lets the grader make one (cgroup v2, or v1's memory, pids
  and cpuacct controllers: root on a usual Linux). Linux then enforces the memory of all
  the submission's processes together, `/tmp` included (tmpfs pages are charged to the
  cgroup), and the number of processes; CPU time of the whole tree is read from it;
- a watchdog thread, everywhere, that every `INTERVAL` seconds adds up the CPU time of
  every process of the submission, its memory (without a cgroup: the tree's resident
  memory; `/tmp` is then capped by its own size), the disk and the number of files in the
  working folder and the kernel's home (both on the host's disk, both writable by the
  notebook), and the time since the kernel started; at the first budget passed it
  stops every process of the submission and records why (`stopped_because`).
"""
import os
import signal
import threading
import time

INTERVAL = 0.25
# Memory this close to a cgroup's limit counts as at it: Linux charges pages to a cgroup in
# batches per CPU, so the usage it reports can stop a little short of the limit.
AT_LIMIT_BYTES = 32 * 2**20
CGROUP_ROOT = "/sys/fs/cgroup"
# cgroup v1 controllers used, each a hierarchy of its own.
V1_CONTROLLERS = ("memory", "pids", "cpuacct")

# Runs outside the sandbox, as the grader: join the cgroups, then become bwrap, so that
# every process of the submission is in them from its first instruction on.
JOIN_AND_EXEC = """\
import os, sys
split = sys.argv.index("--")
for procs in sys.argv[1:split]:
    with open(procs, "w") as handle:
        handle.write(str(os.getpid()))
os.execv(sys.argv[split + 1], sys.argv[split + 1:])
"""


class Cgroup:
    """One cgroup per kernel (v2, or the v1 controllers), or `None` from `make`."""

    def __init__(self, folders, version):
        self.folders, self.version = folders, version

    @classmethod
    def make(cls, name, memory_bytes, max_processes, root=CGROUP_ROOT):
        v2 = os.path.exists(os.path.join(root, "cgroup.controllers"))
        group = cls([], 2 if v2 else 1)
        try:
            if v2:
                parent = _own_v2_cgroup(root)
                enabled = open(os.path.join(parent, "cgroup.subtree_control")).read().split()
                if not {"memory", "pids"} <= set(enabled):
                    return None
                group.folders.append(os.path.join(parent, name))
                os.mkdir(group.folders[0])
                _write(group.folders[0], "memory.max", memory_bytes)
                if os.path.exists(os.path.join(group.folders[0], "memory.swap.max")):
                    _write(group.folders[0], "memory.swap.max", 0)
                _write(group.folders[0], "pids.max", max_processes)
            else:
                for controller in V1_CONTROLLERS:
                    os.mkdir(os.path.join(root, controller, name))
                    group.folders.append(os.path.join(root, controller, name))
                _write(group.folders[0], "memory.limit_in_bytes", memory_bytes)
                _write(group.folders[1], "pids.max", max_processes)
        except OSError:  # not delegated to this user, or a controller missing
            group.remove()
            return None
        return group

    def procs_files(self):
        return [os.path.join(folder, "cgroup.procs") for folder in self.folders]

    def pids(self):
        found = set()
        for path in self.procs_files():
            try:
                found.update(int(line) for line in open(path).read().split())
            except OSError:
                pass
        return found

    def cpu_seconds(self):
        if self.version == 2:
            for line in open(os.path.join(self.folders[0], "cpu.stat")):
                key, value = line.split()
                if key == "usage_usec":
                    return int(value) / 1e6
            return 0.0
        return int(open(os.path.join(self.folders[2], "cpuacct.usage")).read()) / 1e9

    def memory_bytes(self):
        name = "memory.current" if self.version == 2 else "memory.usage_in_bytes"
        return int(open(os.path.join(self.folders[0], name)).read())

    def out_of_memory(self):
        """Whether Linux killed a process of this cgroup for passing its memory limit."""
        try:
            if self.version == 2:
                events = open(os.path.join(self.folders[0], "memory.events")).read().split()
                return int(dict(zip(events[::2], events[1::2])).get("oom_kill", 0)) > 0
            return int(open(os.path.join(self.folders[0], "memory.failcnt")).read()) > 0
        except (OSError, ValueError):
            return False

    def kill_all(self, wait=5.0):
        """SIGKILL every process in the cgroup until none is left (or `wait` passes)."""
        deadline = time.monotonic() + wait
        while True:
            pids = self.pids()
            if not pids or time.monotonic() > deadline:
                return not pids
            for pid in pids:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            time.sleep(0.02)

    def remove(self):
        self.kill_all()
        for folder in self.folders:
            _rmdir(folder)


def _own_v2_cgroup(root):
    for line in open("/proc/self/cgroup"):
        if line.startswith("0::"):
            return os.path.join(root, line.strip()[3:].lstrip("/"))
    return root


def _write(folder, name, value):
    with open(os.path.join(folder, name), "w") as handle:
        handle.write(str(value))


def _rmdir(folder):
    for _ in range(50):
        try:
            os.rmdir(folder)
            return
        except FileNotFoundError:
            return
        except OSError:  # busy until the last process is reaped
            time.sleep(0.02)


def tree_pids(pid):
    """`pid` and all its descendants (those in the sandbox's pid namespace included)."""
    import psutil

    try:
        top = psutil.Process(pid)
        return [top] + top.children(recursive=True)
    except psutil.Error:
        return []


def folder_usage(folder, max_entries):
    """(bytes on disk, entries) under `folder`, stopping after `max_entries` entries."""
    used, count, pending = 0, 0, [folder]
    while pending and count <= max_entries:
        try:
            with os.scandir(pending.pop()) as entries:
                for entry in entries:
                    count += 1
                    status = entry.stat(follow_symlinks=False)
                    used += status.st_blocks * 512
                    if entry.is_dir(follow_symlinks=False):
                        pending.append(entry.path)
        except OSError:
            continue
    return used, count


class SubmissionLimits:
    """Budgets of one kernel and everything it starts; `watch(pid)` enforces them."""

    def __init__(self, sandbox, workdir, home):
        self.sandbox, self.workdir, self.home = sandbox, workdir, home
        name = os.path.basename(home)
        self.memory = int(sandbox.memory_gib * 2**30)
        self.cgroup = Cgroup.make(name, self.memory, sandbox.max_processes) if (
            sandbox.use_cgroups) else None
        self.stopped_because = None
        self._stop = threading.Event()
        self._thread = None
        self._pid = None

    def wrap(self, command):
        """`command` run from inside this submission's cgroup (when there is one)."""
        if self.cgroup is None:
            return command
        import sys

        return [sys.executable, "-c", JOIN_AND_EXEC] + self.cgroup.procs_files() + [
            "--"] + command

    def watch(self, pid):
        self._pid, self._started = pid, time.monotonic()
        self._thread = threading.Thread(target=self._watch, daemon=True,
                                        name="udl-limits-%d" % pid)
        self._thread.start()

    def _watch(self):
        while not self._stop.wait(INTERVAL):
            reason = self.passed_budget()
            if reason:
                self.stopped_because = reason
                self.kill()
                return

    def passed_budget(self):
        """Why the submission must stop now, or None."""
        import psutil

        sandbox = self.sandbox
        processes = tree_pids(self._pid)
        if self.cgroup is not None:
            cpu = self.cgroup.cpu_seconds()
        else:
            cpu = 0.0
            for process in processes:
                try:
                    times = process.cpu_times()
                    cpu += times.user + times.system
                except psutil.Error:
                    pass
        if cpu > sandbox.cpu_seconds:
            return ("the notebook's processes used more than %d CPU seconds in all"
                    % sandbox.cpu_seconds)
        if self.cgroup is None:
            resident = 0
            for process in processes:
                try:
                    resident += process.memory_info().rss
                except psutil.Error:
                    pass
            if resident > self.memory:
                return self.memory_reason()
        used, entries = 0, 0
        for folder in (self.workdir, self.home):
            more_used, more_entries = folder_usage(folder, sandbox.max_files - entries)
            used, entries = used + more_used, entries + more_entries
        if entries > sandbox.max_files:
            return ("the notebook made more than %d files in its folder and home"
                    % sandbox.max_files)
        if used > sandbox.disk_mib * 2**20:
            return ("the notebook wrote more than %d MiB into its folder and home"
                    % sandbox.disk_mib)
        if time.monotonic() - self._started > sandbox.notebook_seconds:
            return ("the notebook ran past its time budget of %d s (all cells together)"
                    % sandbox.notebook_seconds)
        return None

    def memory_reason(self):
        return ("the notebook's processes used more than %g GiB of memory together "
                "(files in /tmp count too)" % self.sandbox.memory_gib)

    def why_it_died(self):
        """What stopped the kernel, when a limit did."""
        if self.stopped_because:
            return self.stopped_because
        if self.cgroup is not None and self.cgroup.out_of_memory():
            return self.memory_reason()
        return None

    def at_memory_limit(self):
        """Whether the submission's memory sits at its cgroup's limit now. A cell writing into
        /tmp (RAM, with no swap to make room) can stall there in Linux's reclaim instead of
        being stopped, until its time limit runs out."""
        if self.cgroup is None:
            return False
        try:
            return self.cgroup.memory_bytes() >= self.memory - AT_LIMIT_BYTES
        except (OSError, ValueError):
            return False

    def kill(self):
        for process in tree_pids(self._pid) if self._pid else []:
            try:
                process.kill()
            except Exception:  # gone already
                pass
        if self.cgroup is not None:
            self.cgroup.kill_all()

    def close(self):
        """Stop watching; make sure no process of the submission is left; drop the cgroup."""
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join()
        if self.cgroup is not None:
            self.cgroup.remove()
