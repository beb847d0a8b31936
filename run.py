#!/usr/bin/env python3
"""One runner for Windows, macOS and Linux: set up the environment, run the pipeline, run the tests.

    python run.py setup      create .venv (Python 3.11-3.13), install the pinned requirements and the
                             helper package (editable), register the Jupyter kernel "mnist-transfer"
    python run.py pipeline   set up, then execute every notebook in numbered order, in place
                             (checkpoint, dataset, results, workbook, report)
    python run.py test       set up, then the unit and consistency tests and, at the same time in a second
                             process, nbval re-executing every notebook in a scratch copy of the project
                             (your files are never changed)
    python run.py lab        set up, then open JupyterLab on the notebooks
    python run.py kernel     register the kernel for your own Jupyter or VS Code too (your user's kernels)

Options are flags, the same on every OS:
    --retrain         pipeline: retrain the MNIST model (the default); test: retrain it in the scratch copy
                      too (5 minutes more); --no-retrain re-checks the shipped checkpoint instead
    --device DEVICE   cpu, cuda or mps for every notebook (default: CUDA or Apple MPS when present, else CPU)
    --python PATH     the interpreter that creates .venv (default: this one, if it is 3.11-3.13)
    --unit / --notebooks   test: only the unit tests / only the notebooks

On Windows use ``py run.py ...`` (or ``py -3.11 run.py ...``); on macOS and Linux ``python3 run.py ...``.
This file runs on any Python 3 from 3.6 on, so that an old interpreter gets a clear message, not a crash.
"""

import argparse
import hashlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent
CODE = ROOT / "Code"
VENV = ROOT / ".venv"
SUPPORTED = ((3, 11), (3, 12), (3, 13))  # what the pins in requirements.txt have wheels for
KERNEL_NAME = "mnist-transfer"
KERNEL_DISPLAY = "Python (mnist-transfer)"
STAMP = VENV / ".mnist-transfer-installed"  # hash of what was installed; a change reinstalls
COPY_IGNORE = (".venv", ".git", "backups", "__pycache__", ".pytest_cache", ".ipynb_checkpoints")


class RunnerError(Exception):
    """Something the person running this must fix; the message says what and how."""


def say(message):
    print("run.py: " + message, flush=True)


def supported_names():
    return ", ".join("%d.%d" % v for v in SUPPORTED)


def is_supported(version):
    return tuple(version[:2]) in SUPPORTED


def venv_python(venv=VENV):
    """The interpreter inside a virtual environment: Scripts\\python.exe on Windows, bin/python elsewhere."""
    return venv / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def interpreter_version(python):
    """(major, minor, micro) of an interpreter, or None when it cannot be run."""
    try:
        out = subprocess.run([str(python), "-c", "import sys; print(*sys.version_info[:3])"],
                             stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, timeout=60)
    except (OSError, subprocess.SubprocessError):
        return None
    if out.returncode != 0:
        return None
    try:
        return tuple(int(part) for part in out.stdout.decode("ascii").split())
    except ValueError:
        return None


def venv_version(venv=VENV):
    """The Python version a .venv was made with, from its pyvenv.cfg (None if there is none)."""
    cfg = venv / "pyvenv.cfg"
    if not cfg.is_file():
        return None
    for line in cfg.read_text(encoding="utf-8", errors="replace").splitlines():
        key, _, value = line.partition("=")
        if key.strip() in ("version", "version_info"):
            try:
                return tuple(int(part) for part in value.strip().split(".")[:3])
            except ValueError:
                return None
    return None


def venv_problem(venv=VENV):
    """Why an existing .venv cannot be used (it is then rebuilt), or None when it is fine or absent."""
    if not venv.exists():
        return None
    made_by = venv_version(venv)
    if made_by is not None and not is_supported(made_by):
        return "it was made by Python %s, which the pinned packages do not support" % ".".join(map(str, made_by))
    python = venv_python(venv)
    if not python.exists():
        return "it has no %s (made on another operating system, or half made)" % python.relative_to(venv)
    running = interpreter_version(python)
    if running is None:
        return "its Python does not start (the interpreter it was made from was moved or removed)"
    if not is_supported(running):
        return "its Python is %s, which the pinned packages do not support" % ".".join(map(str, running))
    return None


def candidate_pythons(explicit):
    """Interpreters to try for a new .venv, best first: --python, $PYTHON, this one, then 3.11-3.13 on PATH."""
    found = []
    if explicit:
        return [explicit]
    if os.environ.get("PYTHON"):
        found.append(os.environ["PYTHON"])
    found.append(sys.executable)
    for major, minor in SUPPORTED:
        name = shutil.which("python%d.%d" % (major, minor))
        if name:
            found.append(name)
    if os.name == "nt" and shutil.which("py"):
        found.extend("py -%d.%d" % v for v in SUPPORTED)
    return found


def choose_python(explicit=None):
    """The first candidate interpreter of a supported version, as an argv list, or a RunnerError naming them."""
    tried = []
    for candidate in candidate_pythons(explicit):
        argv = candidate.split(" ") if candidate.startswith("py -") else [candidate]
        try:
            out = subprocess.run(argv + ["-c", "import sys; print(*sys.version_info[:3])"],
                                 stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, timeout=60)
            version = tuple(int(p) for p in out.stdout.decode("ascii").split()) if out.returncode == 0 else None
        except (OSError, subprocess.SubprocessError, ValueError):
            version = None
        if version and is_supported(version):
            return argv, version
        tried.append("%s (%s)" % (candidate, ".".join(map(str, version)) if version else "does not run"))
    raise RunnerError(
        "No suitable Python found. This project needs Python %s (the pinned torch, numpy and OpenCV have no "
        "wheels for older ones). Tried: %s. Install Python 3.11 (python.org, or your package manager), then run "
        "this again with it, e.g. `python3.11 run.py test`, `py -3.11 run.py test` on Windows, or "
        "`python run.py test --python /path/to/python3.11`." % (supported_names(), "; ".join(tried)))


def remove_tree(folder):
    """Delete a folder we made (.venv, a scratch copy), read-only files included (Windows marks some so)."""
    import stat

    def make_writable_and_retry(function, path, _info):
        os.chmod(path, stat.S_IWRITE)
        function(path)

    shutil.rmtree(str(folder), onerror=make_writable_and_retry)


def wanted_stamp():
    digest = hashlib.sha256()
    for name in ("requirements.txt", "pyproject.toml"):
        digest.update((ROOT / name).read_bytes())
    return digest.hexdigest()


def run(argv, **kwargs):
    """Run a command, echoing it; a failure is a RunnerError naming the command."""
    result = subprocess.run([str(a) for a in argv], **kwargs)
    if result.returncode != 0:
        raise RunnerError("`%s` failed with exit status %d (its output is above)."
                          % (" ".join(str(a) for a in argv[:6]), result.returncode))
    return result


def setup(python=None):
    """Create or repair .venv and install what requirements.txt pins, plus the package (editable) and the kernel."""
    problem = venv_problem()
    if problem:
        say("the existing .venv cannot be used: %s. Removing it and building a new one." % problem)
        remove_tree(VENV)
    if not VENV.exists():
        argv, version = choose_python(python)
        say("creating .venv with Python %s (%s)" % (".".join(map(str, version)), " ".join(argv)))
        run(argv + ["-m", "venv", str(VENV)])
    py = venv_python()
    want = wanted_stamp()
    have = STAMP.read_text(encoding="utf-8").strip() if STAMP.is_file() else ""
    if have != want:
        say("installing requirements.txt into .venv (a few minutes the first time)")
        try:
            # --no-compile: Python compiles what it imports on first use, not the whole of torch now (1.4 min less)
            run([py, "-m", "pip", "install", "--disable-pip-version-check", "--no-compile", "-q", "-r",
                 ROOT / "requirements.txt"])
            run([py, "-m", "pip", "install", "--disable-pip-version-check", "-q", "--no-deps",
                 "--no-build-isolation", "-e", ROOT])
            run([py, "-m", "ipykernel", "install", "--sys-prefix", "--name", KERNEL_NAME,
                 "--display-name", KERNEL_DISPLAY], stdout=subprocess.DEVNULL)
        except RunnerError as err:
            raise RunnerError("%s The install did not finish; run the same command again (it resumes). If it "
                              "fails the same way, delete the .venv folder and retry, or pick another Python with "
                              "--python. Supported: Python %s on Windows x64, Linux x86_64/aarch64 and macOS 14+ on "
                              "Apple silicon (README, 'Platforms')." % (err, supported_names()))
        STAMP.write_text(want + "\n", encoding="utf-8")
    version = subprocess.run([str(py), "-c", "import torch, mnist_transfer; print('torch', torch.__version__)"],
                             stdout=subprocess.PIPE, universal_newlines=True, encoding="utf-8")
    if version.returncode != 0:
        raise RunnerError("the packages in .venv do not import (see above). Delete the .venv folder and run "
                          "this again.")
    say(".venv ready (%s)" % version.stdout.strip())
    return py


def notebooks(folder=CODE):
    """The numbered notebooks in the order they must run: 00_..., 01_..., sorted by name, never by a shell glob."""
    return sorted(p for p in folder.glob("*.ipynb") if p.name[:2].isdigit())


def notebook_env(retrain, device, **extra):
    env = dict(os.environ)
    env["MNIST_RETRAIN"] = "1" if retrain else "0"
    if device:
        env["DIGITS_DEVICE"] = device
    env.update(extra)
    return env


def pipeline(py, retrain=True, device=None):
    """Execute every notebook in place, in order; a different existing dataset is moved to Code/backups/."""
    import time

    env = notebook_env(retrain, device, REPLACE_EXISTING="1")
    for notebook in notebooks():
        start = time.time()
        say("running %s" % notebook.name)
        run([py, "-m", "jupyter", "nbconvert", "--to", "notebook", "--execute", "--inplace",
             "--ExecutePreprocessor.timeout=3600", notebook], env=env, cwd=CODE)
        say("%s done in %.0f s" % (notebook.name, time.time() - start))
    say("results in Code/results/, figures in Code/figures/, 'Assignment 4 Results.xlsx' and "
        "'Assignment 4_Report.pdf' at the top")


def scratch_copy(parent):
    """A copy of the project (without .venv, .git and backups) in which the notebooks may write freely."""
    target = Path(parent) / "project copy"  # a space on purpose: paths with spaces must work
    shutil.copytree(ROOT, target, ignore=shutil.ignore_patterns(*COPY_IGNORE))
    return target


def unit_tests(py, extra=()):
    env = notebook_env(False, None, MPLBACKEND="Agg", PYTHONWARNDEFAULTENCODING="1")
    run([py, "-m", "pytest", "-p", "no:cacheprovider", ROOT / "tests"] + list(extra), env=env, cwd=ROOT)


def notebook_tests(py, retrain=False, device=None):
    """nbval re-executes every notebook in a scratch copy whose package shadows the installed one."""
    parent = tempfile.mkdtemp(prefix="mnist-transfer-nbval-")
    if os.name != "nt":  # stopped by the runner that started it: still remove the scratch copy
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        _notebook_tests_in(Path(parent), py, retrain, device)
    finally:
        shutil.rmtree(parent, ignore_errors=True)  # a kernel may still hold a file open on Windows


def _notebook_tests_in(parent, py, retrain, device):
    """Copy the project into ``parent`` and run nbval there, importing the copy's package."""
    copy = scratch_copy(parent)
    env = notebook_env(retrain, device, REPLACE_EXISTING="1")
    env["PYTHONPATH"] = os.pathsep.join([str(copy / "Code")] + [p for p in [env.get("PYTHONPATH")] if p])
    where = subprocess.run([str(py), "-c", "import mnist_transfer.paths as p; print(p.PROJECT_ROOT)"],
                           env=env, cwd=str(copy), stdout=subprocess.PIPE, universal_newlines=True,
                           encoding="utf-8").stdout.strip()
    if Path(where).resolve() != copy.resolve():
        raise RunnerError("the scratch copy imports mnist_transfer from %s, not from the copy; refusing to "
                          "run the notebooks (they would write into your project)." % where)
    say("re-executing the notebooks with nbval in a scratch copy (%s)" % copy)
    run([py, "-m", "pytest", "-p", "no:cacheprovider", "--nbval-lax"]
        + [p.relative_to(copy).as_posix() for p in notebooks(copy / "Code")], env=env, cwd=copy)


def both_tests(py, args):
    """The unit tests here and, at the same time, nbval in another process (its output follows the unit tests').

    Both are mostly single-threaded (fine-tuning runs on one torch thread), so on 2 cores the two together
    take little longer than the longer one alone.
    """
    flags = (["--retrain"] if args.retrain else []) + (["--device", args.device] if args.device else [])
    handle, log_path = tempfile.mkstemp(prefix="mnist-transfer-nbval-", suffix=".log")
    say("nbval re-executes the notebooks in another process meanwhile; its output follows the unit tests'")
    with os.fdopen(handle, "w", encoding="utf-8") as log:
        own_group = {"creationflags": subprocess.CREATE_NEW_PROCESS_GROUP} if os.name == "nt" else {
            "start_new_session": True}
        notebooks_run = subprocess.Popen([sys.executable, str(Path(__file__).resolve()), "test", "--notebooks"]
                                         + flags, stdout=log, stderr=subprocess.STDOUT, cwd=str(ROOT), **own_group)
    try:
        try:
            unit_tests(py, args.pytest_args)
        except BaseException:
            say("stopping nbval (the unit tests did not pass)")
            stop_with_children(notebooks_run)
            raise
        code = notebooks_run.wait()
        with open(log_path, encoding="utf-8", errors="replace") as log:
            sys.stdout.write(log.read())
        sys.stdout.flush()
        if code != 0:
            raise RunnerError("nbval on the notebooks failed (its output is above).")
    finally:
        notebooks_run.wait()
        os.remove(log_path)


def stop_with_children(process):
    """Stop ``process`` and what it started (pytest, the kernels); its scratch copy is removed on the way out."""
    if process.poll() is not None:
        return
    if os.name == "nt":
        subprocess.run(["taskkill", "/T", "/F", "/PID", str(process.pid)], stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)
    else:
        os.killpg(process.pid, signal.SIGTERM)


def lab(py):
    say("opening JupyterLab on Code/ (stop it with Ctrl+C); choose the kernel '%s' if asked" % KERNEL_DISPLAY)
    subprocess.run([str(py), "-m", "jupyter", "lab", "--ServerApp.root_dir=" + str(CODE)])


def register_user_kernel(py):
    run([py, "-m", "ipykernel", "install", "--user", "--name", KERNEL_NAME, "--display-name", KERNEL_DISPLAY])
    say("kernel '%s' registered for your user: pick it in your own JupyterLab, Notebook or VS Code" % KERNEL_DISPLAY)


def parse(argv):
    parser = argparse.ArgumentParser(prog="run.py", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    parser.add_argument("command", choices=["setup", "pipeline", "test", "lab", "kernel"])
    parser.add_argument("--retrain", dest="retrain", action="store_true", default=None)
    parser.add_argument("--no-retrain", dest="retrain", action="store_false")
    parser.add_argument("--device", choices=["cpu", "cuda", "mps"])
    parser.add_argument("--python", help="interpreter for a new .venv (3.11-3.13)")
    only = parser.add_mutually_exclusive_group()
    only.add_argument("--unit", action="store_true", help="test: only the unit and consistency tests")
    only.add_argument("--notebooks", action="store_true", help="test: only nbval on the notebooks")
    parser.add_argument("pytest_args", nargs="*", help="test: extra arguments for the unit tests (after --)")
    argv = list(argv)
    extra = argv[argv.index("--") + 1:] if "--" in argv else []  # argparse alone refuses "-- --durations=9"
    args = parser.parse_args(argv[:len(argv) - len(extra) - 1] if "--" in argv else argv)
    args.pytest_args += extra
    return args


def main(argv=None):
    args = parse(sys.argv[1:] if argv is None else argv)
    try:
        py = setup(args.python)
        if args.command == "pipeline":
            pipeline(py, retrain=args.retrain is not False, device=args.device)
        elif args.command == "test":
            if args.notebooks:
                notebook_tests(py, retrain=bool(args.retrain), device=args.device)
            elif args.unit:
                unit_tests(py, args.pytest_args)
            else:
                both_tests(py, args)
            say("all tests passed")
        elif args.command == "lab":
            lab(py)
        elif args.command == "kernel":
            register_user_kernel(py)
    except RunnerError as err:
        say("error: %s" % err)
        return 1
    except KeyboardInterrupt:
        say("interrupted")
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
