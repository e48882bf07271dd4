"""The install path: which PyTorch build a machine gets, and one environment for pip and conda."""
import importlib.util
import re

import yaml

from ai4m_helpers.chapters import REPO_ROOT


def _install_torch():
    spec = importlib.util.spec_from_file_location("install_torch", REPO_ROOT / "tools" / "install_torch.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_a_machine_without_a_gpu_asks_the_cpu_index_first_then_the_default_one():
    it = _install_torch()
    cpu = it.attempts("2.13.0", gpu=False)
    assert cpu[0][:3] == ["torch==2.13.0", "--extra-index-url", it.CPU_INDEX]
    assert cpu[-1] == ["torch==2.13.0"]                      # where only the default index is reachable
    assert it.attempts("2.13.0", gpu=True) == [["torch==2.13.0"]]
    assert it.attempts("2.13.0", gpu=False, spec="torch==2.14.1") == [["torch==2.14.1"]]
    assert it.main([]) == 2


def _requirements(lines):
    return {re.split(r"[<>=!~ ]", r, 1)[0].lower().replace("pytorch", "torch"): r for r in lines}


def test_environment_yml_matches_the_package():
    env = yaml.safe_load((REPO_ROOT / "environment.yml").read_text())
    conda = [d for d in env["dependencies"] if isinstance(d, str) and not d.startswith(("python", "pip"))]
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    text = (REPO_ROOT / "pyproject.toml").read_text()
    deps = re.search(r"^dependencies = \[(.*?)\]", text, re.S | re.M).group(1)
    package = [d.strip().strip('",') for d in deps.splitlines() if d.strip().strip('",')]
    ours, theirs = _requirements(conda), _requirements(package)
    assert set(ours) == set(theirs)
    assert all(ours[k].split(k, 1)[-1].replace("pytorch", "") == theirs[k].split(k, 1)[-1] for k in ours)
    assert pip == ["-e .[all,lab]"]


def test_one_version_for_the_package_and_the_release_tag_notebooks_install_from():
    from ai4m_helpers import __version__, book

    version = re.search(r'^version = "(.+)"', (REPO_ROOT / "pyproject.toml").read_text(), re.M).group(1)
    assert version == __version__ and book.release_tag() == f"v{version}"
