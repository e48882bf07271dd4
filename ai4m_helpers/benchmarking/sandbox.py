"""Running a code submission in isolation.

A submission is a Python file with ``fit(X, y) -> model`` and ``predict(model, X) -> labels``.
The platform's ingestion program (below) runs it in a child process that sees:

- its own working directory holding only the public inputs (training examples with labels, test
  examples without) and the submission; the hidden labels never leave the database;
- a scrubbed environment (``python -I``: no user site, no ``PYTHON*`` variables; a minimal
  ``PATH``; one math thread);
- resource limits (``setrlimit``): CPU seconds, address space (per process: a huge allocation
  fails at once), file size, no core dumps; and a wall-clock timeout, after which its whole
  process group is killed;
- where the platform allows it (running as root with the right to make namespaces, as a worker
  does in its container; :func:`isolation` says when it does not, and a root worker without that
  right refuses to run code rather than run it unconfined):

  - a user id of its own, so that it can read nothing the platform wrote;
  - a network namespace of its own, with no interface but a loopback that is down;
  - a mount namespace in which the platform's folders are empty, the folders every user may
    write to (/tmp, /var/tmp, /dev/shm, /run/lock) are fresh, small and empty, so that nothing
    passes between runs through them nor outlives a run, and its own folder is at /tmp/ai4m-run;
  - an IPC namespace (System V shared memory and message queues of its own; POSIX shared
    memory lives in the fresh /dev/shm);
  - a PID namespace, in which it sees and can signal only its own processes; when the
    submission ends, whatever it started is killed and reaped, so that its CPU time counts;
  - a system-call filter (seccomp, :func:`syscall_filter`) refusing the calls it has no use for
    that widen what of the kernel it can reach (new namespaces, mounts, ptrace, BPF...): a
    deny-list, where a container runtime uses an allow-list (where libseccomp is installed);
  - a control group (:mod:`.cgroup`) that bounds the memory and the number of processes of the
    whole run and measures its peak memory, where the machine lets the platform make one.
    Without it, memory is limited per process only, processes per user, and the peak is the
    largest process's high-water mark (which counts the worker's pages it was forked from).
- no GPU: the NVIDIA device nodes lead nowhere in its view, unless its competition grants one
  (``gpu: true`` in the bundle's limits). Then it is pointed at its worker's GPU (the one device
  the worker was handed) by ``CUDA_VISIBLE_DEVICES``; the nodes of the machine's other GPUs stay
  reachable, so a run that sets the variable itself can reach them: GPUs are not isolated.

Its stdout and stderr are kept per step. The ingestion program times ``fit`` and ``predict``
inside the child (prediction: after a warm-up on a few examples, the best of three runs); the
parent reads the run's CPU time from the kernel (``wait4``) and its peak memory from its group.
"""
from __future__ import annotations

import ctypes
import dataclasses
import functools
import io
import json
import os
import re
import pathlib
import select
import signal
import sys
import time

import numpy as np

from .cgroup import RunGroup, Unavailable

CLONE_NEWNET = 0x40000000

INGESTION = r'''
import importlib.util, json, sys, time
import numpy as np

def step(name):                                      # marks where each step's output begins
    for stream in (sys.stdout, sys.stderr):
        print(f"\n[step {name}]", file=stream, flush=True)

def load_submission():
    spec = importlib.util.spec_from_file_location("submission", "submission.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    for name in ("fit", "predict"):
        if not callable(getattr(module, name, None)):
            sys.exit(f"submission.py must define {name}()")
    return module

x_train, y_train, x_test = (np.load(f"{n}.npy") for n in ("x_train", "y_train", "x_test"))
step("load")
submission = load_submission()
step("fit")
start, cpu = time.perf_counter(), time.process_time()
model = submission.fit(x_train, y_train)
torch = sys.modules.get("torch")
gpu = torch is not None and torch.cuda.is_available()
if gpu:
    torch.cuda.synchronize()                         # the GPU's queued work is part of fit
fit_s, fit_cpu_s = time.perf_counter() - start, time.process_time() - cpu

def predict():
    return submission.predict(model, x_test)

flops = None
if torch is not None and isinstance(model, torch.nn.Module):
    from torch.utils.flop_counter import FlopCounterMode
    with FlopCounterMode(display=False) as counter:
        predict()                                    # counted once, then timed below
    flops = int(counter.get_total_flops())
step("predict")
submission.predict(model, x_test[:8])                # a warm-up: first-call costs are not the method's
predict_s = predict_cpu_s = float("inf")
for _ in range(3):                                   # the best of three: other work only adds time
    start, cpu = time.perf_counter(), time.process_time()
    predictions = predict()
    if gpu:
        torch.cuda.synchronize()
    predict_s = min(predict_s, time.perf_counter() - start)
    predict_cpu_s = min(predict_cpu_s, time.process_time() - cpu)
np.save("predictions.npy", np.asarray(predictions), allow_pickle=False)
gpu_peak_mb = torch.cuda.max_memory_allocated() / 2**20 if gpu else None
with open("timing.json", "w") as f:
    json.dump({"fit_s": fit_s, "fit_cpu_s": fit_cpu_s, "predict_s": predict_s, "predict_cpu_s": predict_cpu_s,
               "n_train": len(y_train), "n_test": len(x_test), "flops": flops, "gpu_peak_mb": gpu_peak_mb}, f)
'''


@dataclasses.dataclass(frozen=True)
class SandboxLimits:
    wall_s: float
    cpu_s: int
    memory_mb: int
    processes: int = 64
    file_mb: int = 256
    gpu: bool = False          # the run may use the worker's GPU, where it has one


class SandboxUnavailable(RuntimeError):
    """This machine cannot isolate a run as the sandbox must (the message says why)."""


@dataclasses.dataclass
class CodeRun:
    """What a code submission's ingestion step produced."""

    failure: str | None               # None, or crash / timeout / memory / missing file
    message: str
    predictions: np.ndarray | None
    stdout: str
    stderr: str
    costs: dict


def _root() -> bool:
    return hasattr(os, "geteuid") and os.geteuid() == 0


def isolation() -> dict:
    """What this machine lets the sandbox do beyond rlimits and a private directory."""
    if not _root():
        return {"own user": False, "no network": False, "own processes": False, "control group": False,
                "system calls filtered": False, "why": "the platform does not run as root here: the child keeps the platform's user and "
                       "network, so it can read and write the platform's database, hidden labels included "
                       "(run workers as root in a container to isolate them)"}
    refused = namespaces_refused()
    if refused:
        return {"own user": False, "no network": False, "own processes": False, "control group": False,
                "system calls filtered": False, "why": refused}
    from .cgroup import probe

    missing = probe()
    why = [f"no control group: {missing}; memory is limited per process only, processes per user"] if missing else []
    filtered = syscall_filter() is not None
    if not filtered:
        why.append("no system-call filter: libseccomp (the OS's libseccomp2 and pyseccomp) is missing")
    return {"own user": True, "no network": True, "own processes": True, "control group": not missing,
            "system calls filtered": filtered, "why": "; ".join(why)}


@functools.lru_cache(maxsize=1)
def namespaces_refused() -> str:
    """"" where this process may make the namespaces a run needs (root alone is not enough: a
    container's default capabilities lack CAP_SYS_ADMIN), else why not. Tried in a child."""
    libc = _libc()
    pid = os.fork()
    if pid == 0:
        failed = libc.unshare(CLONE_NEWNET | CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWIPC) != 0 or \
            libc.mount(None, b"/", None, MS_REC | MS_PRIVATE, None) != 0
        os._exit(ctypes.get_errno() or 1 if failed else 0)
    code = os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])
    if code == 0:
        return ""
    return (f"the worker runs as root but may not make namespaces ({os.strerror(code)}): give it "
            "CAP_SYS_ADMIN (docker run --cap-add SYS_ADMIN) to isolate runs")


UID_RANGE = range(20000, 60000)                     # user ids no account on the machine uses
UID_LOCKS = pathlib.Path("/run/ai4m-sandbox-uids")


def _claim_uid(preferred: int | None = None) -> tuple[int, int]:
    """A user id that no other run on this machine holds now (two platforms on one host may
    prefer the same), from ``preferred`` on, and the descriptor of the lock that holds it: the
    lock goes when the descriptor is closed, or with the worker if it dies."""
    import fcntl

    UID_LOCKS.mkdir(mode=0o700, exist_ok=True)
    start = preferred if preferred in UID_RANGE else UID_RANGE.start + os.getpid() % len(UID_RANGE)
    for i in range(len(UID_RANGE)):
        uid = UID_RANGE.start + (start - UID_RANGE.start + i) % len(UID_RANGE)
        fd = os.open(UID_LOCKS / str(uid), os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return uid, fd
        except BlockingIOError:
            os.close(fd)
    raise SandboxUnavailable(f"every sandbox user id ({UID_RANGE.start}-{UID_RANGE.stop - 1}) is in use")


MS_NOSUID, MS_NODEV, MS_NOEXEC = 2, 4, 8
MS_BIND, MS_REC, MS_PRIVATE = 4096, 16384, 1 << 18
CLONE_NEWNS, CLONE_NEWPID, CLONE_NEWIPC = 0x00020000, 0x20000000, 0x08000000
CLONE_NEWUSER, CLONE_NEWUTS, CLONE_NEWCGROUP = 0x10000000, 0x04000000, 0x02000000
PR_SET_PDEATHSIG, PR_SET_DUMPABLE = 1, 4


def _libc():
    libc = ctypes.CDLL(None, use_errno=True)
    libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_char_p]
    return libc


def _check(result: int, what: str) -> None:
    if result != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"sandbox set-up: {what}: {os.strerror(err)}")


SETUP_FAILED = "sandbox set-up failed: "

# Folders every user may write to: each run gets fresh, empty ones (nothing passes between runs
# through them, and nothing a run leaves there outlives it).
SHARED_WRITABLE = ("/tmp", "/var/tmp", "/dev/shm", "/run/lock")
VIEW = pathlib.Path("/tmp/ai4m-run")          # where a run with a user of its own finds its folder


def _bind(libc, fd: int, target: pathlib.Path) -> None:
    """Bind what ``fd`` (an O_PATH descriptor opened before ``target`` was covered) refers to
    onto ``target``, creating it and its parents."""
    target.parent.mkdir(mode=0o755, parents=True, exist_ok=True)
    if os.path.isdir(f"/proc/self/fd/{fd}"):
        target.mkdir(mode=0o755, exist_ok=True)
    else:
        target.touch(exist_ok=True)
    _check(libc.mount(f"/proc/self/fd/{fd}".encode(), str(target).encode(), None, MS_BIND | MS_REC, None),
           f"bind {target}")
    os.close(fd)


def _cover(libc, folder: pathlib.Path, options: bytes, keep: list[pathlib.Path]) -> None:
    """An empty tmpfs over ``folder``, in which only the paths of ``keep`` (below it) are still
    reachable, bound back from descriptors opened before it was covered."""
    held = [(path, os.open(path, os.O_PATH)) for path in keep]
    _check(libc.mount(b"tmpfs", str(folder).encode(), b"tmpfs", MS_NOSUID | MS_NODEV, options), f"tmpfs on {folder}")
    for path, fd in held:
        _bind(libc, fd, path)


def _mount_view(libc, folder: pathlib.Path, hide: list[pathlib.Path], needs: list[pathlib.Path],
                memory_mb: int) -> None:
    """The run's file system, in its own mount namespace: fresh folders every user may write to
    (:data:`SHARED_WRITABLE`, and the message queues of /dev/mqueue), its ``folder`` at :data:`VIEW`, an empty tmpfs over every folder of
    ``hide`` still in sight (the platform's data, other runs), and over every folder that only
    root may cross on the way to the interpreter (``needs``: under /root, say) a tmpfs that holds
    only the interpreter's folders."""
    own = os.open(folder, os.O_PATH)                      # the folder may sit below one covered next
    closed: dict[pathlib.Path, set[pathlib.Path]] = {}
    for path in needs:
        for parent, _ in _closed_ancestors(path):
            closed.setdefault(parent, set()).add(path)          # that path only, not its neighbours
    for parent in sorted(closed, key=lambda p: len(p.parts)):    # outer folders first
        _cover(libc, parent, b"mode=0755", sorted(closed[parent]))
    size = max(1, memory_mb // len(SHARED_WRITABLE))             # together, at most the memory limit
    for shared in map(pathlib.Path, SHARED_WRITABLE):
        if shared.is_dir():
            keep = [path for path in needs if shared in path.parents]
            _cover(libc, shared, f"mode=1777,size={size}m".encode(), keep)
    if os.path.isdir("/dev/mqueue"):                             # the message queues of its IPC namespace
        _check(libc.mount(b"mqueue", b"/dev/mqueue", b"mqueue", MS_NOSUID | MS_NODEV | MS_NOEXEC, None),
               "its own /dev/mqueue")
    _bind(libc, own, VIEW)
    for path in hide:
        if path.is_dir():                                 # (one below a covered folder is gone already)
            _check(libc.mount(b"tmpfs", str(path).encode(), b"tmpfs", 0, b"mode=0700"), f"hide {path}")


def _interpreter_paths() -> list[pathlib.Path]:
    """What the child's Python needs to reach: its executable's folder, its prefixes."""
    paths = {os.path.dirname(os.path.realpath(sys.executable)), sys.prefix, sys.base_prefix}
    return sorted(pathlib.Path(os.path.realpath(p)) for p in paths)


def _process_cap(limits: SandboxLimits) -> int:
    """RLIMIT_NPROC counts every process of the user: without a user of its own, the child may
    start ``limits.processes`` more than the platform's user already runs."""
    import psutil

    me = os.getuid()
    mine = sum(1 for p in psutil.process_iter(["uids"]) if p.info["uids"] and p.info["uids"].real == me)
    return mine + limits.processes


def _limit(limits: SandboxLimits, uid: int | None, hide: list[pathlib.Path], folder: pathlib.Path,
           group: RunGroup | None = None, gpu: bool = False):
    """The child's set-up, run between fork and exec (so it applies to the submission only).
    With its own user, the child works in :data:`VIEW`, onto which its ``folder`` is bound
    (``folder`` may sit below folders only root may enter)."""
    import resource

    cap = _process_cap(limits) if uid is None else limits.processes
    worker = os.getpid()
    libc = _libc()                                  # loaded here: not in a child forked from threads
    needs = _interpreter_paths()
    devices = [] if gpu else _gpu_device_nodes()
    rules = syscall_filter() if uid is not None else None

    def apply() -> None:
        try:
            set_up()
        except BaseException as err:            # subprocess keeps only the type: say it in the run's log
            os.write(2, f"{SETUP_FAILED}{err}\n".encode())
            raise

    def set_up() -> None:
        os.setsid()
        _die_with_parent(libc, worker)
        if group is not None:
            group.enter()                       # before any fork: every process of the run is in it
        mb = 1024 * 1024
        resource.setrlimit(resource.RLIMIT_CPU, (limits.cpu_s, limits.cpu_s + 1))
        # The address space of each process too: an allocation past the limit fails at once,
        # before its pages are touched (the group alone would let it fill them first). Not for
        # a run that is handed a GPU: CUDA reserves far more address space than it uses.
        if not gpu:
            resource.setrlimit(resource.RLIMIT_AS, (limits.memory_mb * mb, limits.memory_mb * mb))
        resource.setrlimit(resource.RLIMIT_FSIZE, (limits.file_mb * mb, limits.file_mb * mb))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        if uid is None:
            resource.setrlimit(resource.RLIMIT_NPROC, (cap, cap))
            return
        # The two processes that wait for the submission are copies of the worker (its memory
        # holds the database's address): no core dump, no tracing. exec resets it for the third.
        libc.prctl(PR_SET_DUMPABLE, 0)
        _check(libc.unshare(CLONE_NEWNET | CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWIPC), "namespaces of its own")
        report = _fork_relay()                  # from here on: the first process of the new PID namespace
        _die_with_relay(libc, report)
        _check(libc.mount(None, b"/", None, MS_REC | MS_PRIVATE, None), "private mounts")
        _check(libc.mount(b"proc", b"/proc", b"proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, None), "its own /proc")
        _mount_view(libc, folder, hide, needs, limits.memory_mb)
        for node in devices:                    # GPUs it was not handed: the nodes lead nowhere
            _check(libc.mount(b"/dev/null", node.encode(), None, MS_BIND, None), f"hide {node}")
        os.chdir(VIEW)
        _fork_init(report)                      # from here on: the submission, the namespace's second process
        resource.setrlimit(resource.RLIMIT_NPROC, (limits.processes, limits.processes))
        os.setgroups([])
        os.setgid(uid)
        os.setuid(uid)
        _die_with_parent(libc, 1)               # changing credentials cleared it
        if rules is not None:
            rules.load()                        # last: the set-up itself needed some of these calls
    return apply


# System calls a submission has no use for, each of which widens what of the kernel it can reach:
# making namespaces (a user namespace gives it root-like powers inside), mounting, reading other
# processes' memory, BPF, perf events, io_uring, userfaultfd, kernel keyrings, modules.
REFUSED_SYSCALLS = ("unshare", "setns", "mount", "umount2", "pivot_root", "chroot", "ptrace",
                    "process_vm_readv", "process_vm_writev", "bpf", "perf_event_open", "userfaultfd",
                    "io_uring_setup", "keyctl", "add_key", "request_key", "init_module", "finit_module",
                    "delete_module", "kexec_load", "open_by_handle_at")
CLONE_NAMESPACES = (CLONE_NEWNS, CLONE_NEWPID, CLONE_NEWIPC, CLONE_NEWNET, CLONE_NEWUSER, CLONE_NEWUTS, CLONE_NEWCGROUP)


def syscall_filter():
    """The run's seccomp filter (libseccomp): everything allowed but :data:`REFUSED_SYSCALLS`
    and clone() with a namespace flag, which fail with EPERM; clone3(), whose flags a filter
    cannot read, fails with ENOSYS, so that the C library falls back to clone(). Built in the
    worker, loaded in the child. None where libseccomp is missing (:func:`isolation` says so)."""
    import errno

    try:
        import pyseccomp as seccomp

        rules = seccomp.SyscallFilter(seccomp.ALLOW)
    except (ImportError, OSError, AttributeError):
        return None
    for name in REFUSED_SYSCALLS:
        try:
            rules.add_rule(seccomp.ERRNO(errno.EPERM), name)
        except (OSError, ValueError):              # a call this kernel or libseccomp does not know
            pass
    for flag in CLONE_NAMESPACES:
        rules.add_rule(seccomp.ERRNO(errno.EPERM), "clone", seccomp.Arg(0, seccomp.MASKED_EQ, flag, flag))
    rules.add_rule(seccomp.ERRNO(errno.ENOSYS), "clone3")
    return rules


def _gpu_device_nodes(dev: str = "/dev") -> list[str]:
    """The NVIDIA device nodes of this machine (a run not handed a GPU finds them empty: setting
    CUDA_VISIBLE_DEVICES itself then gets it nothing). Character devices only: /dev/nvidia-caps
    is a folder of them."""
    import glob
    import stat

    paths = glob.glob(f"{dev}/nvidia*") + glob.glob(f"{dev}/nvidia-caps/*")
    return sorted(p for p in paths if stat.S_ISCHR(os.stat(p).st_mode))


def _die_with_relay(libc, report: int) -> None:
    """In the namespace's first process: killed when the relay ends. Its parent reads as 0 from
    inside the namespace whether the relay lives or not, so the relay's end is read from the
    report pipe (the relay holds its other end)."""
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    poll = select.poll()
    poll.register(report, select.POLLOUT)
    if any(event & (select.POLLERR | select.POLLHUP) for _, event in poll.poll(0)):
        os._exit(75)


def _die_with_parent(libc, parent: int) -> None:
    """The calling process is killed when its parent ends (if that already happened, and the
    parent it sees is no longer ``parent``: it stops)."""
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:
        os._exit(75)


def _close_all_but(keep: int) -> None:
    """Close every inherited descriptor above stderr but ``keep`` (the worker waits for the
    set-up's error pipe to close: a process that never execs must not hold it)."""
    os.closerange(3, keep)
    os.closerange(keep + 1, os.sysconf("SC_OPEN_MAX"))


def _end_like(status: int) -> None:
    """End the calling process the way a child with wait status ``status`` ended."""
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        if sig not in (signal.SIGKILL, signal.SIGSTOP):     # (these two cannot be caught or blocked)
            signal.signal(sig, signal.SIG_DFL)
            signal.pthread_sigmask(signal.SIG_UNBLOCK, [sig])
        os.kill(os.getpid(), sig)
        os._exit(128 + sig)                  # only if the signal did not end it
    os._exit(os.waitstatus_to_exitcode(status) & 0xFF)


def _fork_relay() -> int:
    """Fork after the PID namespace is made. The parent stays in the worker's namespace, waits,
    and ends the way the submission ended, so that the worker reads the submission's status;
    it never returns. The child, the namespace's first process, returns the pipe through which
    it will report that status."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read)
        return write
    try:
        _close_all_but(read)
        _, status = os.waitpid(pid, 0)
        relayed = os.read(read, 4)           # empty when the set-up failed before the submission
        _end_like(int.from_bytes(relayed, "little") if len(relayed) == 4 else status)
    finally:
        os._exit(70)


def _fork_init(report: int) -> None:
    """Fork in the namespace's first process. The parent reaps every process of the run (orphans
    come to it) until the submission ends, then kills and reaps whatever the submission left,
    reports its status on ``report`` and exits. It cannot end by the submission's signal itself
    (the kernel shields a namespace's first process from it): its parent does. The child, the
    submission, returns."""
    pid = os.fork()
    if pid == 0:
        os.close(report)
        return
    try:
        _close_all_but(report)
        while True:
            done, status = os.waitpid(-1, 0)
            if done == pid:
                break
        # What the submission left still counts: end it and reap it here, so that its CPU
        # time and memory reach the worker's wait4 (the kernel would reap it unaccounted).
        try:
            os.kill(-1, signal.SIGKILL)
            while True:
                os.waitpid(-1, 0)
        except (ProcessLookupError, ChildProcessError):
            pass
        os.write(report, status.to_bytes(4, "little"))
    finally:
        os._exit(0)


def _closed_ancestors(path: pathlib.Path) -> list[tuple[pathlib.Path, str]]:
    """Folders on the way to ``path`` that other users may not cross, with the entry below each."""
    out = []
    for parent, child in zip(path.parents, [path, *path.parents]):
        if parent != child and not os.stat(parent).st_mode & 0o001:
            out.append((parent, child.name))
    return out


CLEAN_ENV = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1",
             "MKL_NUM_THREADS": "1", "PYTHONHASHSEED": "0", "PYTHONDONTWRITEBYTECODE": "1"}


def run_code(code: str, x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray, limits: SandboxLimits,
             folder: pathlib.Path, hide: tuple = (), uid: int | None = None) -> CodeRun:
    """Run one code submission in ``folder`` (created; it holds the public inputs only). The
    folders of ``hide`` (the platform's data, the other runs) are empty in the submission's view.
    ``uid``: the user id the child should have (when the platform runs as root; the platform
    derives one from the submission); if another run on this machine holds it, the next free one."""
    folder = pathlib.Path(folder)
    folder.mkdir(parents=True)
    for name, array in (("x_train", x_train), ("y_train", y_train), ("x_test", x_test)):
        np.save(folder / f"{name}.npy", array, allow_pickle=False)
    (folder / "submission.py").write_text(code)
    (folder / "ingest.py").write_text(INGESTION)
    if _root() and namespaces_refused():                     # never run a submission as root, unconfined
        raise SandboxUnavailable(namespaces_refused())
    uid, lease = _claim_uid(uid) if _root() else (None, None)
    try:
        return _run(folder, limits, hide, uid)
    finally:
        if lease is not None:
            os.close(lease)


def _run(folder: pathlib.Path, limits: SandboxLimits, hide: tuple, uid: int | None) -> CodeRun:
    import subprocess

    if uid is not None:
        for path in [folder, *folder.iterdir()]:             # the run's files are its user's
            os.chown(path, uid, uid)
        os.chmod(folder, 0o700)
    group = _run_group(folder.name, limits) if uid is not None else None
    out, err = folder.parent / f"{folder.name}.stdout", folder.parent / f"{folder.name}.stderr"
    gpu = limits.gpu and bool(visible_gpus())          # granted, and the worker has one
    here = str(VIEW if uid is not None else folder)    # the folder as the child sees it
    env = {**CLEAN_ENV, "HOME": here, "TMPDIR": here, **_gpu_env(gpu)}  # its temporary files stay its own
    start = time.perf_counter()
    try:
        with open(out, "wb") as fo, open(err, "wb") as fe:
            try:
                proc = subprocess.Popen([sys.executable, "-I", "ingest.py"], cwd=folder, env=env,
                                        stdin=subprocess.DEVNULL, stdout=fo, stderr=fe,
                                        preexec_fn=_limit(limits, uid, [pathlib.Path(h) for h in hide], folder,
                                                          group, gpu))
            except subprocess.SubprocessError:
                said = [line for line in _tail(err).splitlines() if line.startswith(SETUP_FAILED)]
                raise SandboxUnavailable(said[-1] if said else "sandbox set-up failed") from None
            status, usage, timed_out = _wait(proc, limits.wall_s)
        wall = time.perf_counter() - start
        if uid is None:
            _killpg(proc.pid)                # what it left in its group (with a PID namespace: gone already)
        oom_kills = group.oom_kills() if group is not None else None
        group_peak = group.peak_mb() if group is not None else None
    finally:
        if group is not None:
            group.remove()
    stdout, stderr = _tail(out), _tail(err)
    # What the kernel measured comes last: the child cannot overwrite it with its own numbers.
    # Peak memory: the run's group's, all its processes together; without a group, the largest
    # process's high-water mark, which counts the pages of the worker it was forked from.
    peak = group_peak if group_peak is not None else usage.ru_maxrss / 1024
    costs = {**_self_reported(folder / "timing.json", uid),
             "wall_s": wall, "cpu_s": usage.ru_utime + usage.ru_stime, "peak_mb": peak}
    failure, message = classify(status, stderr, timed_out, limits, costs["cpu_s"], oom_kills)
    predictions = None
    if failure is None:
        try:
            raw = _read_output(folder / "predictions.npy", uid, MAX_OUTPUT_BYTES)
            predictions = None if raw is None else np.load(io.BytesIO(raw), allow_pickle=False)
        except Exception as err:              # anything the child wrote is untrusted: never crash on it
            failure, message = "malformed output", f"predictions.npy cannot be read: {type(err).__name__}: {err}"
        else:
            if predictions is None:
                failure, message = "missing file", "the run ended without writing its predictions"
    return CodeRun(failure, message, predictions, stdout, stderr, costs)


def group_prefix(run: str) -> str:
    """How the control group of the run whose folder is named ``run`` begins; a random tail
    follows (two platforms on one machine may name their runs alike)."""
    return f"ai4m-{run}-"


def _run_group(name: str, limits: SandboxLimits) -> RunGroup | None:
    """The run's control group, or None where the machine gives none (rlimits alone then).
    Two processes more than the submission's limit: the two that wait for it (see _limit)."""
    try:
        import secrets

        return RunGroup.create(group_prefix(name) + secrets.token_hex(4), limits.memory_mb, limits.processes + 2)
    except (Unavailable, OSError):
        return None


def visible_gpus() -> list[str]:
    """The GPUs this process may use, as CUDA numbers them (those CUDA_VISIBLE_DEVICES lists, if
    it is set; else every GPU the NVIDIA driver reports)."""
    listed = os.environ.get("CUDA_VISIBLE_DEVICES")
    if listed is not None:
        return [d for d in listed.split(",") if d.strip()]
    driver = pathlib.Path("/proc/driver/nvidia/gpus")
    return [str(i) for i in range(len(list(driver.iterdir())))] if driver.is_dir() else []


def _gpu_env(gpu: bool) -> dict:
    """The devices a run sees: none, unless it is handed the worker's GPU (a worker is handed
    one by :func:`~.platform.run_workers`, or by Ray)."""
    if not gpu:
        return {"CUDA_VISIBLE_DEVICES": ""}
    return {"CUDA_VISIBLE_DEVICES": ",".join(visible_gpus()),
            "CUBLAS_WORKSPACE_CONFIG": ":4096:8"}        # deterministic cuBLAS, if the run asks for it


MAX_OUTPUT_BYTES = 64 * 1024 * 1024
MAX_LOG_CHARS = 200_000
TIMING_KEYS = ("fit_s", "fit_cpu_s", "predict_s", "predict_cpu_s", "n_train", "n_test", "flops", "gpu_peak_mb")


STEP_MARK = re.compile(r"^\[step (load|fit|predict)\]$", re.MULTILINE)


def split_steps(text: str, first: str = "start") -> list[tuple[str, str]]:
    """A log cut at the ingestion program's step marks: [(step, text)], empty parts dropped."""
    parts, step, pos = [], first, 0
    for mark in STEP_MARK.finditer(text):
        parts.append((step, text[pos:mark.start()]))
        step, pos = mark.group(1), mark.end()
    parts.append((step, text[pos:]))
    return [(name, body.strip("\n")) for name, body in parts if body.strip()]


def _tail(path: pathlib.Path) -> str:
    """The end of a log (a submission may print without end)."""
    with open(path, "rb") as f:
        f.seek(max(0, path.stat().st_size - MAX_LOG_CHARS))
        return f.read().decode(errors="replace")


def _read_output(path: pathlib.Path, uid: int | None, limit: int) -> bytes | None:
    """A file the child wrote, read safely: no symbolic link followed (another run's output),
    a regular file only (not a FIFO that would block the worker), owned by the child's user,
    at most ``limit`` bytes. None when there is none."""
    import stat

    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except FileNotFoundError:
        return None
    with os.fdopen(fd, "rb") as f:
        info = os.fstat(f.fileno())
        if not stat.S_ISREG(info.st_mode):
            raise ValueError("not a regular file")
        if uid is not None and info.st_uid != uid:
            raise ValueError("not written by the submission")
        if info.st_size > limit:
            raise ValueError(f"larger than {limit} bytes")
        return f.read(limit + 1)


def _self_reported(path: pathlib.Path, uid: int | None) -> dict:
    """The ingestion program's step timings: the child could write anything here, so only known
    keys with numbers are kept (they are the submission's own report, next to the kernel's)."""
    try:
        raw = _read_output(path, uid, 64 * 1024)
        data = json.loads(raw) if raw else {}
    except Exception:
        return {}
    if not isinstance(data, dict):
        return {}
    return {k: float(v) for k, v in data.items()
            if k in TIMING_KEYS and isinstance(v, (int, float)) and not isinstance(v, bool) and np.isfinite(v)}


def _wait(proc, wall_s: float):
    """Wait for the child, killing its process group at the deadline; returns its wait status,
    its resource usage (from the kernel) and whether it timed out."""
    deadline = time.monotonic() + wall_s
    timed_out = False
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            proc.returncode = os.waitstatus_to_exitcode(status)
            return status, usage, timed_out
        if time.monotonic() > deadline and not timed_out:
            timed_out = True
            _killpg(proc.pid)
        time.sleep(0.005)


def _killpg(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


MEMORY_SIGNS = ("MemoryError", "Cannot allocate memory", "std::bad_alloc", "_ArrayMemoryError",
                "OpenBLAS blas_thread_init: pthread_create failed")


def classify(status: int, stderr: str, timed_out: bool, limits: SandboxLimits,
             cpu_s: float = 0.0, oom_kills: int | None = None) -> tuple[str | None, str]:
    """The failure kind of a finished child, or None when it exited cleanly (whatever it printed).
    ``oom_kills``: processes of the run the kernel killed at its control group's memory limit
    (None: the run had no group, and a SIGKILL from nowhere is taken for the system's memory killer)."""
    if timed_out:
        return "timeout", f"killed after the wall-clock limit of {limits.wall_s:g} s"
    code = os.waitstatus_to_exitcode(status)
    if code == 0:
        return None, ""
    if oom_kills:                                       # the kernel says so: nothing else to guess
        return "memory", f"killed at the memory limit of {limits.memory_mb} MB (all the run's processes together)"
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        if sig == signal.SIGXCPU or (sig == signal.SIGKILL and cpu_s >= limits.cpu_s - 0.5):
            return "timeout", f"stopped at the CPU limit of {limits.cpu_s} s"
        if sig == signal.SIGKILL and oom_kills is None:
            return "memory", "killed by the system (out of memory)"
        return "crash", f"ended by signal {signal.Signals(sig).name}"
    if any(sign in stderr for sign in MEMORY_SIGNS):
        return "memory", f"ran out of memory under the limit of {limits.memory_mb} MB"
    last = stderr.strip().splitlines()[-1] if stderr.strip() else f"exit status {code}"
    return "crash", last[:500]
