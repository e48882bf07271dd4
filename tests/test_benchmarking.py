"""Chapter 9's platform core: bundles and their schema, splits and their hash, the checks at
submission time, scoring against scikit-learn, the sandbox's statuses, leaderboards."""
import datetime as dt
import pathlib

import numpy as np
import pytest

pytest.importorskip("sqlalchemy")
pytest.importorskip("jsonschema")

from ai4m_helpers.benchmarking import bundle as B, experiment as ex  # noqa: E402
from ai4m_helpers.benchmarking.params import PARAMS  # noqa: E402
from ai4m_helpers.benchmarking.platform import (Platform, Refused, check_code, check_predictions,  # noqa: E402
                                                check_result_file, process_next, score)
from ai4m_helpers.benchmarking.sandbox import SandboxLimits, isolation, run_code  # noqa: E402
from ai4m_helpers.params import ParameterError  # noqa: E402

P = PARAMS.resolve(profile="smoke")
BUNDLE = ex.bundle_text(P, 300, "test")
NOW = ex.during_phase()


def test_a_valid_bundle_parses_and_bad_ones_get_one_line():
    comp = B.parse_bundle(BUNDLE)
    assert comp.dataset == "digits" and comp.primary == "accuracy" and comp.limits.wall_s == P["wall_s"]
    assert comp.phase("main").is_over(ex.after_phase()) and not comp.phase("main").is_over(NOW)
    for bad, message in [
        (BUNDLE.replace("dataset: digits", "dataset: imagenet"), "data/dataset"),
        (BUNDLE.replace("public: 0.2", "public: 0.9"), r"public \+ private"),
        (BUNDLE.replace("primary: accuracy", "primary: macro_f1\nextra: 1"), "Additional properties"),
        (BUNDLE.replace("title: test", "title: [unclosed"), "not valid YAML"),
        (BUNDLE.replace('end: "2026-12-31', 'end: "2025-12-31'), "end must come after"),
    ]:
        with pytest.raises(B.BundleError, match=message) as err:
            B.parse_bundle(bad)
        assert "\n" not in str(err.value)


def test_splits_are_fixed_disjoint_and_hashed():
    comp = B.parse_bundle(BUNDLE)
    x, y = B.load_dataset("digits")
    a, b = B.make_splits(comp, 1797), B.make_splits(comp, 1797)
    assert a.sha256(x, y) == b.sha256(x, y) and len(a.train) == 300
    assert not set(a.train) & set(a.test) and not set(a.public) & set(a.private)
    other = B.make_splits(B.parse_bundle(BUNDLE.replace("seed: 0", "seed: 1")), 1797)
    assert other.sha256(x, y) != a.sha256(x, y)
    changed = x.copy()
    changed[a.public[0], 0] += 1                         # the same indices over other data
    assert a.sha256(changed, y) != a.sha256(x, y)


def test_checks_at_submission_time():
    good = "id,label\n" + "".join(f"{i},{i % 3}\n" for i in range(5))
    assert check_result_file(good.encode(), 5, [0, 1, 2]) is None
    assert "expected 6" in check_result_file(good.encode(), 6, [0, 1, 2])
    assert "NaN" in check_result_file(good.replace("2,2", "2,nan").encode(), 5, [0, 1, 2])
    assert "header" in check_result_file(b"a,b\n", 0, [0])
    assert "ids" in check_result_file(good.replace("4,1", "3,1").encode(), 5, [0, 1, 2])
    assert "classes" in check_result_file(good.replace("4,1", "4,7").encode(), 5, [0, 1, 2])
    assert check_code(b"def fit(X, y):\n    return 0\ndef predict(m, X):\n    return X\n") is None
    assert "predict" in check_code(b"def fit(X, y):\n    return 0\n")
    assert "parse" in check_code(b"def fit(:\n")
    assert check_predictions(np.array([0, 1, 2]), 3, [0, 1, 2]) is None
    assert "shape" in check_predictions(np.array([0, 1]), 3, [0, 1, 2])
    assert "NaN" in check_predictions(np.array([0.0, np.nan, 1.0]), 3, [0, 1, 2])
    assert "fractions" in check_predictions(np.array([0.5, 1.0, 1.0]), 3, [0, 1, 2])
    assert "numbers" in check_predictions(np.array(["a", "b", "c"]), 3, [0, 1, 2])


def test_scores_agree_with_a_direct_computation():
    rng = np.random.default_rng(0)
    labels, pred = rng.integers(0, 4, 100), rng.integers(0, 4, 100)
    s = score(pred, labels, np.arange(100) < 40, ("accuracy", "macro_f1"))
    assert s["public"]["accuracy"] == pytest.approx(np.mean(pred[:40] == labels[:40]))
    assert s["private"]["accuracy"] == pytest.approx(np.mean(pred[40:] == labels[40:]))
    f1 = []
    for c in range(4):                          # macro F1 by hand on the private part
        tp = np.sum((pred[40:] == c) & (labels[40:] == c))
        fp, fn = np.sum((pred[40:] == c) & (labels[40:] != c)), np.sum((pred[40:] != c) & (labels[40:] == c))
        f1.append(2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 0.0)
    assert s["private"]["macro_f1"] == pytest.approx(np.mean(f1))


LIMITS = SandboxLimits(wall_s=3, cpu_s=5, memory_mb=1024, processes=16)
X = np.random.default_rng(0).normal(size=(40, 4))
Y = np.arange(40) % 2


@pytest.mark.parametrize("code,failure", [
    ("import numpy as np\ndef fit(X, y):\n    return 0\ndef predict(m, X):\n    return np.zeros(len(X), int)\n", None),
    ("def fit(X, y):\n    raise ValueError('no')\ndef predict(m, X):\n    return X\n", "crash"),
    ("import time\ndef fit(X, y):\n    time.sleep(60)\ndef predict(m, X):\n    return X\n", "timeout"),
    ("def fit(X, y):\n    while True:\n        pass\ndef predict(m, X):\n    return X\n", "timeout"),
    ("import numpy as np\ndef fit(X, y):\n    return np.ones((40000, 40000))\ndef predict(m, X):\n    return X\n",
     "memory"),
    ("import os\ndef fit(X, y):\n    return 0\ndef predict(m, X):\n    os._exit(0)\n", "missing file"),
])
def test_the_sandbox_gives_each_failure_its_status(tmp_path, code, failure):
    limits = LIMITS if "while True" not in code else SandboxLimits(wall_s=10, cpu_s=1, memory_mb=1024)
    run = run_code(code, X, Y, X[:10], limits, tmp_path / "run")
    assert run.failure == failure, (run.message, run.stderr[-300:])
    assert run.costs["wall_s"] > 0 and run.costs["peak_mb"] > 0
    if failure is None:
        assert run.predictions.shape == (10,) and run.costs["predict_s"] >= 0


def test_the_sandbox_cuts_the_network_and_hides_the_platforms_data(tmp_path):
    if not isolation()["own user"]:
        pytest.skip(isolation()["why"])
    import shutil
    import tempfile

    import sys

    # Readable by every user, in one of the few places a run sees of the machine (the interpreter's
    # prefix: /tmp and the like are fresh in every run).
    shared = pathlib.Path(tempfile.mkdtemp(prefix="ai4m-visible-", dir=sys.prefix))
    try:
        shared.chmod(0o755)
        secret = shared / "labels.txt"
        secret.write_text("7 1 4")
        secret.chmod(0o644)
        peek = (f"def fit(X, y):\n    return open({str(secret)!r}).read()\n"
                "def predict(m, X):\n    print(m)\n    return X[:, 0].astype(int) * 0\n")
        seen = run_code(peek, X, Y, X[:10], LIMITS, tmp_path / "control")            # the control: readable
        assert seen.failure is None and "7 1 4" in seen.stdout
        hidden = run_code(peek, X, Y, X[:10], LIMITS, tmp_path / "peek", hide=(shared,))
        assert hidden.failure == "crash" and "7 1 4" not in hidden.stdout
    finally:
        shutil.rmtree(shared)
    net = ("import socket\ndef fit(X, y):\n    socket.create_connection(('127.0.0.1', 22), timeout=1)\n"
           "def predict(m, X):\n    return X[:, 0]\n")
    run = run_code(net, X, Y, X[:10], LIMITS, tmp_path / "net")
    assert run.failure == "crash" and "unreachable" in run.message.lower()
    from ai4m_helpers.benchmarking.sandbox import _interpreter_paths

    leave = ("import os\ndef fit(X, y):\n    print('seen', sorted(os.listdir('/tmp')), os.listdir('/dev/shm'))\n"
             "    for f in ('/tmp/left', '/dev/shm/left'):\n        open(f, 'w').write('x')\n"
             "def predict(m, X):\n    return X[:, 0].astype(int) * 0\n")
    tmp = pathlib.Path("/tmp")                # in /tmp: its own folder, and the way to a venv kept there
    kept = sorted({"ai4m-run"} | {p.relative_to(tmp).parts[0] for p in _interpreter_paths() if tmp in p.parents})
    for name in ("first", "second"):                    # fresh /tmp and /dev/shm in every run
        run = run_code(leave, X, Y, X[:10], LIMITS, tmp_path / name)
        assert run.failure is None and f"seen {kept} []" in run.stdout, run.stdout
    assert not pathlib.Path("/tmp/left").exists() and not pathlib.Path("/dev/shm/left").exists()
    fork = "import os\ndef fit(X, y):\n    while True:\n        os.fork()\ndef predict(m, X):\n    return X[:, 0]\n"
    run = run_code(fork, X, Y, X[:10], LIMITS, tmp_path / "fork")
    assert run.failure == "crash" and "Resource temporarily unavailable" in run.message


def test_a_run_sees_only_its_own_processes_and_takes_them_all_along(tmp_path):
    if not isolation()["own processes"]:
        pytest.skip(isolation()["why"])
    import os
    import time

    import psutil

    look = ("import os, tempfile, time\ndef fit(X, y):\n    if os.fork() == 0:\n        os.setsid()\n        time.sleep(60)\n"
            "    print('pids', os.getpid(), sorted(int(p) for p in os.listdir('/proc') if p.isdigit()))\n"
            "    print('home', os.environ['HOME'] == os.getcwd() == tempfile.gettempdir())\n"
            "    return 0\ndef predict(m, X):\n    return X[:, 0].astype(int) * 0\n")
    start = time.perf_counter()
    run = run_code(look, X, Y, X[:10], LIMITS, tmp_path / "look", uid=24680)
    assert run.failure is None and time.perf_counter() - start < 20          # the daemon did not hold it
    assert "pids 2 [1, 2, 3]" in run.stdout                # itself, the waiting first process, its daemon
    assert "home True" in run.stdout                       # its home and temporary files are its folder
    assert not [p for p in psutil.process_iter(["uids"]) if p.info["uids"] and p.info["uids"].real == 24680]
    assert os.getpid() > 3                                                 # (the worker is not in there)
    segv = "import os, signal\ndef fit(X, y):\n    os.kill(os.getpid(), signal.SIGSEGV)\ndef predict(m, X):\n    return X\n"
    run = run_code(segv, X, Y, X[:10], LIMITS, tmp_path / "segv")
    assert run.failure == "crash" and run.message == "ended by signal SIGSEGV"    # the submission's own end reaches the worker


def test_root_without_the_right_to_make_namespaces_runs_nothing(tmp_path):
    """A container's default capabilities make a root without CAP_SYS_ADMIN: the sandbox says so,
    and refuses to run a submission (as root, unconfined) instead of failing inside the set-up."""
    import shutil
    import subprocess
    import sys

    if not isolation()["own processes"] or not shutil.which("setpriv"):
        pytest.skip("needs root with the right to make namespaces, and setpriv, to take that right away")
    script = ("import numpy as np\n"
              "from ai4m_helpers.benchmarking.sandbox import SandboxLimits, SandboxUnavailable, isolation, run_code\n"
              "print(isolation()['why'])\n"
              "try:\n"
              f"    run_code('', np.zeros((2, 1)), np.zeros(2), np.zeros((1, 1)), SandboxLimits(1, 1, 256), {str(tmp_path / 'r')!r})\n"
              "except SandboxUnavailable as err:\n    print('refused:', err)\n")
    out = subprocess.run(["setpriv", "--bounding-set", "-sys_admin", sys.executable, "-c", script],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    why, refused = out.stdout.strip().splitlines()
    assert "may not make namespaces" in why and "CAP_SYS_ADMIN" in why and refused == f"refused: {why}"


def test_no_two_runs_on_a_machine_hold_one_user_id():
    import os

    from ai4m_helpers.benchmarking.sandbox import _claim_uid

    if not isolation()["own user"]:
        pytest.skip(isolation()["why"])
    first, lock = _claim_uid(59998)
    second, other = _claim_uid(59998)                 # another platform prefers the same id
    third, last = _claim_uid(59999)                   # and the range wraps round
    assert (first, second, third) == (59998, 59999, 20000)
    os.close(lock)
    again, lock = _claim_uid(59998)                   # released: free again
    assert again == 59998
    for fd in (lock, other, last):
        os.close(fd)


def test_a_run_may_not_make_namespaces_but_may_fork_and_start_threads(tmp_path):
    if not isolation()["system calls filtered"]:
        pytest.skip(isolation()["why"] or "no system-call filter here")
    code = ("import ctypes, os, threading\nimport numpy as np\ndef fit(X, y):\n"
            "    libc = ctypes.CDLL(None, use_errno=True)\n"
            "    print('userns', libc.unshare(0x10000000), ctypes.get_errno())\n"      # CLONE_NEWUSER
            "    print('ptrace', libc.ptrace(0, 0, 0, 0), ctypes.get_errno())\n"        # PTRACE_TRACEME
            "    pid = os.fork()\n    if pid == 0:\n        os._exit(7)\n"
            "    print('fork', os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]))\n"
            "    t = threading.Thread(target=print, args=('thread ran',))\n    t.start()\n    t.join()\n"
            "    return 0\ndef predict(m, X):\n    return X[:, 0].astype(int) * 0\n")
    run = run_code(code, X, Y, X[:10], LIMITS, tmp_path / "calls")
    assert run.failure is None, run.stderr[-500:]
    assert "userns -1 1" in run.stdout and "ptrace -1 1" in run.stdout               # EPERM
    assert "fork 7" in run.stdout and "thread ran" in run.stdout


def test_memory_is_limited_over_the_whole_run(tmp_path):
    if not isolation()["control group"]:
        pytest.skip(isolation()["why"] or "no control group here")
    from ai4m_helpers.benchmarking.examples import FAULTY

    hog = FAULTY["memory hog in four processes"][1].replace("{memory_mb}", "512")   # 4 x 171 MB
    tight = SandboxLimits(wall_s=10, cpu_s=10, memory_mb=512, processes=16)
    run = run_code(hog, X, Y, X[:10], tight, tmp_path / "tight")
    assert run.failure == "memory" and "all the run's processes" in run.message, (run.message, run.stderr[-300:])
    roomy = SandboxLimits(wall_s=10, cpu_s=10, memory_mb=2048, processes=16)
    assert run_code(hog, X, Y, X[:10], roomy, tmp_path / "roomy").failure is None     # the control


def test_control_group_paths_are_read_in_both_layouts():
    from ai4m_helpers.benchmarking.cgroup import _own_paths

    v1 = "9:name=systemd:/\n8:pids:/\n4:memory:/jobs/a1\n2:cpu,cpuacct:/x\n0::/\n"
    assert _own_paths(v1) == {"name=systemd": "/", "pids": "/", "memory": "/jobs/a1", "cpu": "/x", "cpuacct": "/x",
                              "": "/"}
    assert _own_paths("0::/user.slice/worker.scope\n") == {"": "/user.slice/worker.scope"}


def test_gpu_device_nodes_lead_nowhere_in_a_run_without_a_gpu(tmp_path, monkeypatch):
    """A stand-in for /dev/nvidia0 (a node of /dev/zero's kind, where a run can see it): read in a
    run that was handed no GPU, it gives nothing; the folder /dev/nvidia-caps is not taken for one."""
    import os
    import shutil
    import stat
    import sys
    import tempfile

    from ai4m_helpers.benchmarking import sandbox

    if not isolation()["own processes"]:
        pytest.skip(isolation()["why"])
    dev = pathlib.Path(tempfile.mkdtemp(prefix="ai4m-dev-", dir=sys.prefix))
    try:
        dev.chmod(0o755)
        (dev / "nvidia-caps").mkdir()
        try:
            os.mknod(dev / "nvidia0", stat.S_IFCHR | 0o666, os.makedev(1, 5))
        except OSError as err:
            pytest.skip(f"cannot make a device node here: {err}")
        nodes = sandbox._gpu_device_nodes(str(dev))
        assert nodes == [str(dev / "nvidia0")]
        read = (f"def fit(X, y):\n    print('read', len(open({nodes[0]!r}, 'rb').read(4)))\n"
                "def predict(m, X):\n    return X[:, 0].astype(int) * 0\n")
        monkeypatch.setattr(sandbox, "_gpu_device_nodes", lambda: [])
        assert "read 4" in run_code(read, X, Y, X[:10], LIMITS, tmp_path / "control").stdout
        monkeypatch.setattr(sandbox, "_gpu_device_nodes", lambda: nodes)
        assert "read 0" in run_code(read, X, Y, X[:10], LIMITS, tmp_path / "hidden").stdout
        monkeypatch.setattr(sandbox, "_gpu_device_nodes", lambda: [str(dev / "nvidia9")])   # gone: set-up fails
        with pytest.raises(sandbox.SandboxUnavailable, match="sandbox set-up failed: .*hide .*nvidia9"):
            run_code(read, X, Y, X[:10], LIMITS, tmp_path / "broken")
    finally:
        shutil.rmtree(dev)


def test_a_gpu_is_handed_over_only_where_the_competition_grants_one(monkeypatch):
    from ai4m_helpers.benchmarking.platform import worker_gpu
    from ai4m_helpers.benchmarking.sandbox import _gpu_env, visible_gpus

    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3")
    assert visible_gpus() == ["3"]
    assert _gpu_env(False)["CUDA_VISIBLE_DEVICES"] == "" and _gpu_env(True)["CUDA_VISIBLE_DEVICES"] == "3"
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    assert visible_gpus() == []                              # a worker handed no GPU hands none on
    assert [worker_gpu(n, ["0", "1"])["CUDA_VISIBLE_DEVICES"] for n in range(3)] == ["0", "1", "0"]
    assert worker_gpu(0, [])["CUDA_VISIBLE_DEVICES"] == ""
    assert B.parse_bundle(BUNDLE.replace("gpu: false", "gpu: true")).limits.gpu
    with pytest.raises(B.BundleError, match="gpu"):
        B.parse_bundle(BUNDLE.replace("gpu: false", "gpu: maybe"))


def test_what_a_submission_writes_cannot_fool_the_worker(tmp_path):
    other = tmp_path / "elsewhere.npy"
    np.save(other, np.zeros(10, dtype=int))
    other.chmod(0o644)
    link = ("import atexit, os\nimport numpy as np\ndef fit(X, y):\n    return 0\n"
            "def swap():\n    os.remove('predictions.npy')\n"
            f"    os.symlink({str(other)!r}, 'predictions.npy')\n"
            "def predict(m, X):\n    atexit.register(swap)\n    return np.ones(len(X), int)\n")
    run = run_code(link, X, Y, X[:10], LIMITS, tmp_path / "link")
    assert run.failure == "malformed output" and run.predictions is None          # the link is not followed
    forged = ("import atexit, json\nimport numpy as np\ndef fit(X, y):\n    return 0\n"
              "def forge():\n    json.dump({'wall_s': 0.0, 'peak_mb': 1, 'predict_s': 'x', 'fit_s': [1]}, "
              "open('timing.json', 'w'))\n"
              "def predict(m, X):\n    atexit.register(forge)\n    return np.ones(len(X), int)\n")
    run = run_code(forged, X, Y, X[:10], LIMITS, tmp_path / "forged")
    assert run.failure is None and run.costs["wall_s"] > 0 and run.costs["peak_mb"] > 1   # the kernel's numbers
    assert "predict_s" not in run.costs and "fit_s" not in run.costs


def test_a_torch_model_gets_its_flops_counted(tmp_path):
    pytest.importorskip("torch")
    code = ("import torch\ndef fit(X, y):\n    torch.manual_seed(0)\n"
            "    return torch.nn.Linear(X.shape[1], 2).double()\n"
            "def predict(m, X):\n    with torch.no_grad():\n"
            "        return m(torch.as_tensor(X)).argmax(1).numpy()\n")
    run = run_code(code, X, Y, X[:10], SandboxLimits(wall_s=60, cpu_s=60, memory_mb=8192), tmp_path / "torch")
    assert run.failure is None, run.stderr[-500:]
    assert run.costs["flops"] == 2 * 10 * 4 * 2                # one matrix product: 2 · batch · in · out


def test_refused_submissions_do_not_count_and_boards_show_finished_ones_only(tmp_path):
    platform = Platform(tmp_path / "data", runs_dir=str(tmp_path / "runs"))
    platform.create("d", BUNDLE.replace("submissions_per_day: 50", "submissions_per_day: 2"))
    ada, bob = platform.register("ada"), platform.register("bob")
    n = len(platform.load("d").labels)
    bad = platform.submit(ada, "d", "main", "result", b"id,label\n0,1\n", now=NOW)
    good = "id,label\n" + "".join(f"{i},{i % 10}\n" for i in range(n))
    first = platform.submit(ada, "d", "main", "result", good.encode(), "modulo", now=NOW)
    platform.submit(ada, "d", "main", "result", good.encode(), "again", now=NOW)
    with pytest.raises(Refused, match="limit"):
        platform.submit(ada, "d", "main", "result", good.encode(), now=NOW)
    assert platform.submission(ada, bad)["failure"] == "refused"
    with pytest.raises(Refused, match="another participant"):
        platform.submission(bob, first)
    with pytest.raises(Refused, match="not open"):
        platform.submit(bob, "d", "main", "result", good.encode(), now=ex.after_phase())
    while process_next(platform, "test:1:0") is not None:
        pass
    board = platform.leaderboard("d", "main", now=NOW)
    assert [row["participant"] for row in board] == ["ada"] and board[0]["submission"] == first   # tie: the earlier
    with pytest.raises(Refused, match="private"):
        platform.leaderboard("d", "main", "private", token=ada, now=NOW)
    assert platform.leaderboard("d", "main", "private", now=ex.after_phase())


@pytest.mark.parametrize("bad,message", [
    ({"train_sizes": [1000, 500, 250]}, "increasing"),
    ({"train_sizes": [250, 500, 2000]}, "1,079"),
    ({"backend": "slurm"}, "one of"),
    ({"wall_s": float("nan")}, "wall_s"),
])
def test_bad_parameters_are_refused(bad, message):
    with pytest.raises(ParameterError, match=message):
        PARAMS.resolve(profile="smoke", **bad)


def test_phase_dates_are_aware():
    assert ex.during_phase().tzinfo is not None and ex.after_phase() > ex.during_phase()
    assert ex.after_phase() - ex.during_phase() > dt.timedelta(days=1)
