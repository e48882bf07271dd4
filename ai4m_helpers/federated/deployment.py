"""The federation of :mod:`.apps` on Flower's deployment engine, on this machine.

A SuperLink and one SuperNode per client run as separate OS processes (``flower-superlink``,
``flower-supernode``, insecure, on free local ports) and the app goes to the SuperLink with
``flwr run``, as it would to a federation that spans machines. In Flower 1.42 the SuperLink
serves its Control, Fleet and Runtime APIs over HTTP on one port, and both it and every
SuperNode start a ``flower-superexec`` that launches ``flwr-serverapp`` / ``flwr-clientapp``
per task (the default "subprocess" isolation): these are found on ``PATH``, so the venv's
``bin`` goes first. The app project holds only its ``pyproject.toml``; its components import
``ai4m_helpers`` from the environment (``PYTHONPATH`` names this checkout, so that every
process runs the same code as the caller).

Everything Flower writes (its configuration file with the SuperLink connection, the installed
app bundles) goes to a temporary ``FLWR_HOME``; telemetry, the update check and the runtime
installation of dependencies are switched off, so that nothing is downloaded.
"""
from __future__ import annotations

import contextlib
import os
import pathlib
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

import psutil
import tomli_w
from flwr.app import ArrayRecord

from . import crypto
from .apps import RESULT_FILE, FedSetting, read_result, run_files

BIN = pathlib.Path(sys.executable).parent          # the venv's scripts, next to its python
EXECUTABLES = ("flower-superlink", "flower-supernode", "flower-superexec", "flwr",
               "flwr-serverapp", "flwr-clientapp")
CONNECTION = "ai4m-local"                          # the SuperLink connection's name
APP_COMPONENTS = {"serverapp": "ai4m_helpers.federated.apps:server_app",
                  "clientapp": "ai4m_helpers.federated.apps:client_app"}
OFFLINE = {"FLWR_TELEMETRY_ENABLED": "0", "FLWR_DISABLE_UPDATE_CHECK": "1",
           "FLWR_DISABLE_RUNTIME_DEPENDENCY_INSTALLATION": "1"}


def missing_executables() -> list[str]:
    """The Flower executables this environment lacks (none: the deployment engine can run)."""
    return [name for name in EXECUTABLES if not (BIN / name).exists()]


def write_app_project(folder, run_config: dict) -> pathlib.Path:
    """A minimal Flower app project: what ``flwr run`` builds into the app bundle (FAB) it sends.

    No code goes with it: the components name modules of the installed ``ai4m_helpers``, and
    ``dependencies`` is empty so that no process tries to install anything."""
    folder = pathlib.Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    project = {
        "project": {"name": "ai4m-federation", "version": "1.0.0", "license": "MIT",
                    "description": "Chapter 5's federation (ai4m_helpers.federated.apps)",
                    "dependencies": []},
        "tool": {"flwr": {"app": {"publisher": "ai4m", "components": APP_COMPONENTS,
                                  "config": dict(run_config)}}},
    }
    path = folder / "pyproject.toml"
    path.write_text(tomli_w.dumps(project))
    return path


def run_deployment(setting: FedSetting, workdir, keys: crypto.Keys | None = None,
                   timeout: float = 180.0) -> tuple[ArrayRecord, dict]:
    """One federation on Flower's deployment engine; returns the server's final arrays and its
    result, as :func:`.apps.run_in_process` does.

    ``timeout`` bounds the whole (start-up and run). Every process's output is kept in
    ``workdir/logs``; every process started here (and what they started) is ended before this
    returns, also on failure or timeout."""
    deadline = time.monotonic() + timeout
    missing = missing_executables()
    if missing:
        raise RuntimeError(f"Flower's deployment engine needs {', '.join(missing)} in {BIN}")
    workdir = pathlib.Path(workdir).resolve()
    run_config, node_config = run_files(setting, workdir, keys)
    out = pathlib.Path(run_config["out-dir"])
    shutil.rmtree(out, ignore_errors=True)         # a result left over is no result of this run
    logs = workdir / "logs"
    shutil.rmtree(logs, ignore_errors=True)
    logs.mkdir()
    app = write_app_project(workdir / "app", run_config).parent
    processes: dict[str, subprocess.Popen] = {}     # by name, as their logs are
    with tempfile.TemporaryDirectory(prefix="flwr-home-", ignore_cleanup_errors=True) as home:
        env = _environment(pathlib.Path(home))
        link_port, *node_ports = _free_ports(1 + setting.clients)
        link = f"127.0.0.1:{link_port}"
        _write_connection(pathlib.Path(home), link)

        def start(name: str, *args: str) -> subprocess.Popen:
            with open(logs / f"{name}.log", "wb") as log:   # the child keeps its own handle
                processes[name] = subprocess.Popen([str(BIN / args[0]), *args[1:]], cwd=workdir, env=env,
                                                   stdout=log, stderr=subprocess.STDOUT,
                                                   start_new_session=True)
            return processes[name]

        try:
            superlink = start("superlink", "flower-superlink", "--insecure", "--host", "127.0.0.1",
                              "--port", str(link_port), "--disable-runtime-dependency-installation")
            _wait_for_port(link_port, superlink, logs / "superlink.log", deadline)
            for k, port in enumerate(node_ports):
                config = workdir / f"node-{k}.toml"
                config.write_text(tomli_w.dumps({**node_config, "partition-id": k,
                                                 "num-partitions": setting.clients}))
                start(f"supernode-{k}", "flower-supernode", "--insecure", "--superlink", link,
                      "--host", "127.0.0.1", "--port", str(port), "--node-config", str(config))
            # --stream follows the ServerApp's log until the run finishes (the SuperLink ends
            # the stream then), so waiting for this process is waiting for the run.
            start("flwr-run", "flwr", "run", str(app), CONNECTION, "--stream")
            _wait_for_run(processes, logs, deadline, timeout)
        finally:
            _stop(list(processes.values()))
    if not (out / RESULT_FILE).exists():
        raise RuntimeError(f"the run wrote no result to {out}\n{_tail(logs / 'flwr-run.log')}")
    return read_result(out)


def _environment(home: pathlib.Path) -> dict:
    """This process's environment, with Flower kept off the network and out of ``~/.flwr``,
    the venv's executables first on ``PATH``, and this checkout importable."""
    root = str(pathlib.Path(__file__).resolve().parents[2])
    path = [root, *filter(None, [os.environ.get("PYTHONPATH")])]
    return {**os.environ, **OFFLINE, "FLWR_HOME": str(home),
            "PATH": os.pathsep.join([str(BIN), os.environ.get("PATH", "")]),
            "PYTHONPATH": os.pathsep.join(path)}


def _write_connection(home: pathlib.Path, address: str) -> None:
    """The Flower configuration file (``$FLWR_HOME/config.toml``) with one SuperLink
    connection, the default, where ``flwr run`` finds the SuperLink (Flower 1.42 reads it there,
    no longer from ``[tool.flwr.federations]`` in the app's pyproject)."""
    config = {"superlink": {"default": CONNECTION, CONNECTION: {"address": address, "insecure": True}}}
    (home / "config.toml").write_text(tomli_w.dumps(config))


def _free_ports(count: int) -> list[int]:
    """Ports the system hands out now (held together so that they differ)."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def _wait_for_port(port: int, process: subprocess.Popen, log: pathlib.Path, deadline: float) -> None:
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the SuperLink exited with code {process.returncode}\n{_tail(log)}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.2)
    raise RuntimeError(f"the SuperLink did not open port {port} in time\n{_tail(log)}")


def _wait_for_run(processes: dict[str, subprocess.Popen], logs: pathlib.Path, deadline: float,
                  timeout: float) -> None:
    """Wait for ``flwr run`` to end; fail early when the SuperLink or a SuperNode dies."""
    runner = processes["flwr-run"]
    while runner.poll() is None:
        dead = [name for name, p in processes.items() if p is not runner and p.poll() is not None]
        if dead:
            code = processes[dead[0]].returncode
            raise RuntimeError(f"{dead[0]} exited with code {code} during the run\n{_tail(logs / f'{dead[0]}.log')}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"the run did not finish within {timeout:.0f} s\n{_tail(logs / 'flwr-run.log')}")
        time.sleep(0.5)
    if runner.returncode != 0:
        raise RuntimeError(f"flwr run exited with code {runner.returncode}\n{_tail(logs / 'flwr-run.log')}")


def _stop(processes: list[subprocess.Popen]) -> None:
    """End each process, its process group, and the descendants that left the group (the
    SuperLink starts its SuperExec in a session of its own): SIGTERM, then SIGKILL for what is
    still there after a few seconds."""
    tree = []
    for p in processes:
        if p.poll() is None:                   # not reaped yet: the pid is still this process's
            with contextlib.suppress(psutil.NoSuchProcess):
                leader = psutil.Process(p.pid)
                tree += [leader, *leader.children(recursive=True)]
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for p in processes:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(p.pid, sig)          # start_new_session: each one leads its group
        for process in tree:
            with contextlib.suppress(psutil.NoSuchProcess):
                process.send_signal(sig)
        _, tree = psutil.wait_procs(tree, timeout=5)
    for p in processes:
        p.wait(timeout=5)


def _tail(path: pathlib.Path, lines: int = 40) -> str:
    text = path.read_text(errors="replace").splitlines() if path.exists() else ["(no log)"]
    return f"--- last lines of {path} ---\n" + "\n".join(text[-lines:])
