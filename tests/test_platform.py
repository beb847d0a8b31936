"""The grader's own machine: the runner, the installed package, kernels started anywhere, line endings, encodings."""

import ast
import importlib.util
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK_NAMES = [
    "00_pretrain_mnist.ipynb", "01_dataset_preparation.ipynb", "02_baseline_evaluation.ipynb",
    "03_finetune_last_layer.ipynb", "04_finetune_n_layers.ipynb", "05_writer_study.ipynb",
    "06_analysis_and_report.ipynb",
]


def load_runner():
    spec = importlib.util.spec_from_file_location("run", ROOT / "run.py")
    runner = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(runner)
    return runner


runner = load_runner()


def test_notebooks_run_in_numbered_order_whatever_the_file_system_lists(tmp_path):
    assert [p.name for p in runner.notebooks()] == NOTEBOOK_NAMES
    for name in reversed(NOTEBOOK_NAMES + ["scratch.ipynb"]):  # created newest-first, plus one without a number
        (tmp_path / name).write_text("{}", encoding="utf-8")
    assert [p.name for p in runner.notebooks(tmp_path)] == NOTEBOOK_NAMES


def test_every_notebook_names_the_project_kernel():
    for name in NOTEBOOK_NAMES:
        kernelspec = nbformat.read(ROOT / "Code" / name, as_version=4).metadata["kernelspec"]
        assert kernelspec["name"] == runner.KERNEL_NAME, name


def _first_imports(name: str) -> str:
    """The import lines of a notebook's first code cells, as a grader's kernel runs them first."""
    cells = [c for c in nbformat.read(ROOT / "Code" / name, as_version=4).cells if c.cell_type == "code"]
    lines = [line for cell in cells[:2] for line in cell.source.splitlines()
             if line.startswith(("import ", "from "))]
    return "\n".join(lines)


@pytest.mark.parametrize("where", ["project root", "unrelated folder"])
def test_a_kernel_started_anywhere_imports_the_package_and_finds_the_project(tmp_path, where):
    """VS Code starts the kernel in the workspace root; others start it wherever: the package must not care."""
    cwd = ROOT if where == "project root" else tmp_path
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": runner.KERNEL_NAME, "display_name": runner.KERNEL_DISPLAY,
                                 "language": "python"}
    nb.cells = [nbformat.v4.new_code_cell(_first_imports(name)) for name in NOTEBOOK_NAMES]
    nb.cells.append(nbformat.v4.new_code_cell(
        "import os\nfrom mnist_transfer import data, paths\n"
        "print(os.getcwd()); print(paths.PROJECT_ROOT); print(len(data.load_own_dataset()['test']['y']))"))
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}  # the installed package, not a path hack
    client = NotebookClient(nb, timeout=300, startup_timeout=240, kernel_name=runner.KERNEL_NAME,
                            resources={"metadata": {"path": str(cwd)}}, env=env)
    try:
        client.execute()
    except Exception as err:  # noqa: BLE001 - the message says which cell failed and why
        pytest.fail(f"a kernel started in the {where} failed: {err}")
    cwd_out, root_out, n_test = nb.cells[-1].outputs[0]["text"].split()
    assert Path(cwd_out).resolve() == cwd.resolve()
    assert Path(root_out).resolve() == ROOT
    assert int(n_test) == 20


def test_a_venv_made_by_an_unsupported_python_is_named_and_rebuilt(tmp_path):
    venv = tmp_path / ".venv"
    (venv / ("Scripts" if os.name == "nt" else "bin")).mkdir(parents=True)
    (venv / "pyvenv.cfg").write_text("home = /usr/bin\nversion = 3.9.18\n", encoding="utf-8")
    assert runner.venv_version(venv) == (3, 9, 18)
    assert "made by Python 3.9.18" in runner.venv_problem(venv)
    (venv / "pyvenv.cfg").write_text("home = /usr/bin\nversion_info = 3.11.7.final.0\n", encoding="utf-8")
    assert "has no" in runner.venv_problem(venv)  # made by a good Python, but no interpreter in it
    assert runner.venv_problem(tmp_path / "absent") is None


def _old_python():
    for name in ("python3.10", "python3.9", "python3.8"):
        found = shutil.which(name)
        if found and subprocess.run([found, "-c", "pass"]).returncode == 0:
            return found
    for version in ("3.10", "3.9", "3.8"):
        pyenv = Path.home() / ".pyenv" / "versions"  # pyenv's own folder, where there is one
        for folder in sorted(pyenv.glob(f"{version}.*")) if pyenv.is_dir() else []:
            if (folder / "bin" / "python").is_file():
                return str(folder / "bin" / "python")
    return None


def _runner_copy(tmp_path: Path) -> Path:
    for name in ("run.py", "requirements.txt", "pyproject.toml"):
        shutil.copy(ROOT / name, tmp_path / name)
    return tmp_path / "run.py"


def test_an_old_python_is_refused_naming_the_versions_that_work(tmp_path):
    old = _old_python()
    if old is None:
        pytest.skip("no Python older than 3.11 on this machine to try")
    script = _runner_copy(tmp_path)
    out = subprocess.run([old, str(script), "setup", "--python", old], capture_output=True, text=True,
                         encoding="utf-8", cwd=tmp_path)
    assert out.returncode == 1, out.stdout + out.stderr
    assert "needs Python 3.11, 3.12, 3.13" in out.stdout, out.stdout
    assert "py -3.11 run.py test" in out.stdout
    assert not (tmp_path / ".venv").exists()


def test_a_broken_venv_of_an_old_python_is_removed_with_a_message(tmp_path):
    old = _old_python()
    if old is None:
        pytest.skip("no Python older than 3.11 on this machine to make a wrong .venv with")
    script = _runner_copy(tmp_path)
    subprocess.run([old, "-m", "venv", "--without-pip", str(tmp_path / ".venv")], check=True)
    out = subprocess.run([sys.executable, str(script), "setup", "--python", old], capture_output=True,
                         text=True, encoding="utf-8", cwd=tmp_path)
    assert out.returncode == 1
    assert "the existing .venv cannot be used: it was made by Python 3." in out.stdout, out.stdout
    assert "Removing it" in out.stdout and not (tmp_path / ".venv").exists()


def _git(*args, cwd=ROOT):
    return subprocess.run(["git", *args], cwd=cwd, capture_output=True, check=True).stdout


def test_a_clone_with_windows_line_endings_keeps_scripts_and_binaries_intact(tmp_path):
    """Git for Windows checks out with core.autocrlf=true: scripts must stay LF, binaries byte for byte."""
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", "-c", "core.autocrlf=true", str(ROOT), str(clone)], check=True)
    binary = (".png", ".jpg", ".pdf", ".xlsx", ".pt", ".gz", ".otf", ".ttf")
    checked = {"lf": 0, "binary": 0}
    for line in _git("ls-files", "-s", cwd=clone).decode("utf-8").splitlines():
        meta, path = line.split("\t", 1)
        blob = meta.split()[1]
        file = clone / path
        if path.endswith(binary):
            assert _git("hash-object", "--no-filters", path, cwd=clone).decode().strip() == blob, path
            checked["binary"] += 1
        elif path.endswith((".py", ".ipynb", ".sh", ".typ", ".toml", ".ini", ".md", ".json", ".txt")) \
                or path in ("Makefile", ".ci/run", ".gitattributes"):
            assert b"\r\n" not in file.read_bytes(), f"{path} was checked out with CRLF"
            checked["lf"] += 1
    assert checked["lf"] > 40 and checked["binary"] > 100, checked


SOURCE_DIRS = [ROOT / "Code" / "mnist_transfer", ROOT / "Code" / "scripts", ROOT / "tests"]


def _text_mode_calls_without_encoding(path: Path):
    """(line, call) of every text-mode file open in ``path`` that does not name its encoding."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        keywords = {k.arg for k in node.keywords}
        func = node.func
        name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
        owner = getattr(func.value, "id", "") if isinstance(func, ast.Attribute) else ""
        if name in ("read_text", "write_text") and "encoding" not in keywords:
            yield node.lineno, name
        elif name == "open" and owner in ("", "gzip", "io", "bz2", "lzma"):
            mode = node.args[1] if len(node.args) > 1 else next((k.value for k in node.keywords if k.arg == "mode"), None)
            text_mode = not (isinstance(mode, ast.Constant) and "b" in str(mode.value))
            if owner == "gzip" and mode is None:
                text_mode = False  # gzip.open defaults to binary
            if text_mode and "encoding" not in keywords:
                yield node.lineno, f"{owner + '.' if owner else ''}open"
        elif name in ("run", "check_output", "Popen") and owner == "subprocess" \
                and ({"text", "universal_newlines"} & keywords) and "encoding" not in keywords:
            yield node.lineno, f"subprocess.{name}"


def test_every_text_file_is_opened_as_utf8():
    """Windows reads a text file without an encoding as cp1252; every open in our code names UTF-8."""
    files = [ROOT / "run.py"] + [p for d in SOURCE_DIRS for p in sorted(d.glob("*.py"))]
    missing = [f"{p.relative_to(ROOT).as_posix()}:{line} {call}" for p in files
               for line, call in _text_mode_calls_without_encoding(p)]
    assert not missing, missing


def test_the_encoding_check_finds_an_open_without_encoding(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("import gzip\nfrom pathlib import Path\nPath('a').read_text()\nopen('b', 'w')\n"
                   "open('c', 'rb')\ngzip.open('d', 'rt')\nPath('e').write_text('x', encoding='utf-8')\n",
                   encoding="utf-8")
    assert [line for line, _ in _text_mode_calls_without_encoding(bad)] == [3, 4, 6]


def test_arguments_after_a_double_dash_go_to_pytest():
    args = runner.parse(["test", "--unit", "--", "--durations=5", "-k", "sheet"])
    assert args.command == "test" and args.unit and args.pytest_args == ["--durations=5", "-k", "sheet"]
    assert runner.parse(["test"]).pytest_args == []


def test_stopping_the_notebook_run_stops_what_it_started(tmp_path):
    """`run.py test` runs nbval beside the unit tests; when those fail, nbval and its kernels are stopped too."""
    pid_file = tmp_path / "grandchild.pid"
    script = ("import subprocess, sys, time\n"
              "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(120)'])\n"
              f"open({str(pid_file)!r}, 'w', encoding='utf-8').write(str(child.pid))\n"
              "time.sleep(120)\n")
    group = {"creationflags": subprocess.CREATE_NEW_PROCESS_GROUP} if os.name == "nt" else {"start_new_session": True}
    parent = subprocess.Popen([sys.executable, "-c", script], **group)
    for _ in range(200):
        if pid_file.exists() and pid_file.read_text(encoding="utf-8"):
            break
        time.sleep(0.05)
    grandchild = int(pid_file.read_text(encoding="utf-8"))
    runner.stop_with_children(parent)
    assert parent.wait(10) != 0
    if os.name == "nt":  # taskkill /T ended the tree, or said so
        return
    for _ in range(100):
        try:
            os.kill(grandchild, 0)
        except ProcessLookupError:
            break
        time.sleep(0.05)
    else:
        pytest.fail("the notebook run's own child is still running")
