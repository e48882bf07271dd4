"""A control group for every sandboxed run: limits over all the processes a run starts.

rlimits bound one process at a time: a submission that forks gets the address-space limit again
in every child, and the process limit counts the processes of a user, not of a run. A control
group bounds the run as a whole: its memory (resident pages and page cache, no swap), the number
of its processes, and it tells afterwards whether the kernel's memory killer struck inside it.

Both layouts of the kernel's control groups are handled: the unified one (v2: one folder per
group, what current distributions mount) and the older one (v1: one hierarchy per controller,
what some container hosts still mount). A run's group sits below the worker's own, so a limit
the worker is under (its container's) still holds. Creating one needs write access to the
worker's group (root, with the control-group file system mounted writable); where that is
missing, :func:`probe` says why and the sandbox falls back to rlimits.

Not done yet: on cgroup v2, a group that holds processes cannot also hand controllers to child
groups (the "no internal processes" rule), so a run's group can be made only where the worker's
own group passes memory and pids down already, which it cannot while the worker sits in it.
The way out (move the worker into a leaf of its own group first, then make runs' groups beside
it) is left for a machine with cgroup v2 to test it on; until then v2 hosts fall back to rlimits.
"""
from __future__ import annotations

import os
import pathlib
import signal
import time

ROOT = pathlib.Path("/sys/fs/cgroup")
CONTROLLERS = ("memory", "pids")          # in both layouts; v1 has a hierarchy for each


class Unavailable(Exception):
    """This machine does not let the platform create a control group (the message says why)."""


def _own_paths(text: str | None = None) -> dict[str, str]:
    """This process's group in every hierarchy: {controller: path}, "" for the unified one."""
    text = pathlib.Path("/proc/self/cgroup").read_text() if text is None else text
    paths = {}
    for line in text.splitlines():
        _, controllers, path = line.split(":", 2)
        for name in controllers.split(",") if controllers else [""]:
            paths[name] = path
    return paths


def _below(mount: pathlib.Path, path: str) -> pathlib.Path:
    """The folder of ``path`` under ``mount``; the mount itself when the path is not visible
    there (a container sees its own group as the root of the hierarchy)."""
    folder = mount / path.lstrip("/")
    return folder if folder.is_dir() else mount


def _write(path: pathlib.Path, value: str) -> None:
    fd = os.open(path, os.O_WRONLY)
    try:
        os.write(fd, value.encode())
    finally:
        os.close(fd)


def _parents() -> tuple[str, list[pathlib.Path]]:
    """The layout ("v2" or "v1") and the folders a run's group goes below (raises Unavailable)."""
    own = _own_paths()
    if (ROOT / "cgroup.controllers").exists():
        parent = _below(ROOT, own.get("", "/"))
        enabled = (parent / "cgroup.subtree_control").read_text().split()
        missing = [c for c in CONTROLLERS if c not in enabled]
        if missing:
            try:
                _write(parent / "cgroup.subtree_control", " ".join(f"+{c}" for c in missing))
            except OSError as err:
                raise Unavailable(f"cannot enable {', '.join(missing)} below {parent}: {err.strerror} (on "
                                  "cgroup v2 the worker's own group holds the worker; see cgroup.py)") from None
        return "v2", [parent]
    folders = [ROOT / c for c in CONTROLLERS]
    if not all(f.is_dir() for f in folders):
        raise Unavailable(f"no control-group file system with {' and '.join(CONTROLLERS)} under {ROOT}")
    return "v1", [_below(ROOT / c, own.get(c, "/")) for c in CONTROLLERS]


class RunGroup:
    """One run's control group. Create it in the worker, :meth:`enter` it in the child before
    the submission starts (its children follow), then read :meth:`oom_kills` and :meth:`remove`."""

    def __init__(self, layout: str, folders: list[pathlib.Path]):
        self.layout, self.folders = layout, folders

    @classmethod
    def create(cls, name: str, memory_mb: int, processes: int) -> "RunGroup":
        layout, parents = _parents()
        folders = [parent / name for parent in parents]
        made = []
        try:
            for folder in folders:
                folder.mkdir()
                made.append(folder)
            group = cls(layout, folders)
            group._limit(memory_mb * 1024 * 1024, processes)
        except OSError as err:
            for folder in made:
                folder.rmdir()
            raise Unavailable(f"cannot set up a control group: {err}") from None
        return group

    def _file(self, v2_name: str, v1_name: str) -> pathlib.Path:
        controller = v1_name.split(".")[0]
        folder = self.folders[0] if self.layout == "v2" else self.folders[CONTROLLERS.index(controller)]
        return folder / (v2_name if self.layout == "v2" else v1_name)

    def _limit(self, memory: int, processes: int) -> None:
        _write(self._file("memory.max", "memory.limit_in_bytes"), str(memory))
        swap = self._file("memory.swap.max", "memory.memsw.limit_in_bytes")
        if swap.exists():                                # no swap: the limit is the run's memory
            _write(swap, "0" if self.layout == "v2" else str(memory))
        _write(self._file("pids.max", "pids.max"), str(processes))

    def enter(self) -> None:
        """Move the calling process into the group (called in the child, before it forks)."""
        for folder in self.folders:
            _write(folder / "cgroup.procs", str(os.getpid()))

    def oom_kills(self) -> int:
        """How many processes of the run the kernel killed at the memory limit."""
        text = self._file("memory.events", "memory.oom_control").read_text()
        counts = dict(line.split() for line in text.splitlines() if len(line.split()) == 2)
        return int(counts.get("oom_kill", 0))

    def peak_mb(self) -> float | None:
        """The most memory the run held at once, all its processes together (None where the
        kernel does not keep it: memory.peak came with Linux 5.19)."""
        path = self._file("memory.peak", "memory.max_usage_in_bytes")
        return int(path.read_text()) / 2**20 if path.exists() else None

    def processes(self) -> list[int]:
        procs = [folder / "cgroup.procs" for folder in self.folders]
        return [int(p) for path in procs if path.exists() for p in path.read_text().split()]

    def remove(self) -> None:
        """Kill whatever still runs in the group, then delete it."""
        for _ in range(200):
            pids = self.processes()
            if not pids:
                break
            for pid in pids:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            time.sleep(0.01)
        for folder in self.folders:
            for _ in range(100):                      # an exiting process may hold it a moment
                try:
                    folder.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    time.sleep(0.01)


def discard(prefix: str) -> None:
    """Remove the groups whose names start with ``prefix`` if they are still there (their worker
    was lost before removing them), killing whatever still runs in them."""
    try:
        layout, parents = _parents()
    except (Unavailable, OSError):
        return
    names = {f.name for parent in parents for f in parent.glob(f"{prefix}*") if f.is_dir()}
    for name in names:
        RunGroup(layout, [parent / name for parent in parents if (parent / name).is_dir()]).remove()


def probe() -> str:
    """"" when a run here gets a control group of its own, else the reason it does not."""
    try:
        group = RunGroup.create(f"ai4m-probe-{os.getpid()}", 64, 8)
    except (Unavailable, OSError) as err:
        return str(err)
    group.remove()
    return ""
