"""Worker scripts run under a side interpreter: a Python whose packages cannot live beside skdynemb.

auto-sklearn (Python 3.9) and the benchmark-only CrabNet (Python 3.10) each get a venv built by a
setup script under ``$XDG_CACHE_HOME/skdynemb/`` (default ``~/.cache``). A :class:`SideEnv` says
where that interpreter is and runs a worker script under it: isolated (``python -I``: neither
PYTHONPATH nor user site-packages of this env leak in), in its own process group (a timeout kills
the worker and everything it started), with its stderr quoted in every error.
"""

from __future__ import annotations

import os
import signal
import subprocess
from dataclasses import dataclass
from pathlib import Path

#: the exit status a worker uses when its package does not import (each worker defines ENV_BROKEN = 3)
ENV_BROKEN = 3
_STDERR_TAIL = 4000  # characters of the worker's stderr quoted in errors


def stderr_tail(text: str) -> str:
    """The last :data:`_STDERR_TAIL` characters of a worker's stderr (stripped)."""
    text = text.strip()
    return text if len(text) <= _STDERR_TAIL else "..." + text[-_STDERR_TAIL:]


def _kill_group(proc: subprocess.Popen) -> None:
    """End the worker and everything it started."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait()


@dataclass(frozen=True)
class SideEnv:
    """One side environment.

    Parameters
    ----------
    name : str
        Shown in messages (e.g. ``"auto-sklearn"``).
    package : str
        What its workers import, as named when that fails (e.g. ``"auto-sklearn 0.15"``).
    folder : str
        The venv's folder under ``<cache>/skdynemb/`` (e.g. ``"autosklearn-0.15.0"``).
    env_var : str
        Environment variable naming the interpreter when none is passed.
    python_source : str
        How the caller's own choice is named in messages (e.g. ``"the python parameter"``).
    setup_hint : str
        How to create the env, appended to "missing" errors.
    env_error, worker_error : type of Exception
        Raised when the env is unusable / when a worker fails or times out.
    """

    name: str
    package: str
    folder: str
    env_var: str
    python_source: str
    setup_hint: str
    env_error: type
    worker_error: type

    def default_dir(self) -> Path:
        """Where the setup script builds the env by default."""
        cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
        return Path(cache) / "skdynemb" / self.folder

    def resolve_python(self, python=None) -> tuple[Path, str]:
        """The side interpreter and where that choice came from (caller, env var or default)."""
        if python is not None:
            return Path(python), self.python_source
        if os.environ.get(self.env_var):
            return Path(os.environ[self.env_var]), f"${self.env_var}"
        return self.default_dir() / "bin" / "python", "the default location"

    def run(self, worker: Path, args: list[str], cwd: Path, python, timeout: float, env: dict | None = None,
            timeout_advice: str = "") -> None:
        """Run ``worker ARGS`` under the side interpreter in ``cwd``.

        ``env`` replaces the environment (None: this process's); ``timeout_advice`` is inserted in
        the timeout message. Raises ``env_error`` (interpreter missing, package not importable) or
        ``worker_error`` (non-zero exit, killed, or still running after ``timeout`` s).
        """
        exe, source = self.resolve_python(python)
        if not (exe.is_file() and os.access(exe, os.X_OK)):
            raise self.env_error(f"no {self.name} interpreter at {exe} (from {source}); {self.setup_hint}")
        proc = subprocess.Popen([str(exe), "-I", str(worker), *args], cwd=cwd, env=env, stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE, text=True, start_new_session=True)
        try:
            _, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            _kill_group(proc)
            _, err = proc.communicate()
            raise self.worker_error(f"{self.name} worker ({args[0]}) still running after {timeout:g} s and was "
                                    f"killed; {timeout_advice}its stderr:\n{stderr_tail(err)}") from None
        finally:
            _kill_group(proc)
        if proc.returncode == ENV_BROKEN:
            raise self.env_error(f"{exe} (from {source}) cannot import {self.package}: {stderr_tail(err)}\n"
                                 f"{self.setup_hint}")
        if proc.returncode != 0:
            how = f"killed by signal {-proc.returncode}" if proc.returncode < 0 else f"exit status {proc.returncode}"
            raise self.worker_error(f"{self.name} worker ({args[0]}) failed ({how}); its stderr:\n{stderr_tail(err)}")
