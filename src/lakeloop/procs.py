"""Background processes the project starts (the Kafka broker, Airflow's api-server and
scheduler) are found again through pid files."""

from __future__ import annotations

import logging
import os
import signal
import socket
import time
from pathlib import Path

log = logging.getLogger(__name__)


def live_pid(pid_file: Path, marker: bytes) -> int | None:
    """The pid in `pid_file` when that process is alive and its command line holds `marker`
    (a recycled pid, a zombie or a missing file: None)."""
    try:
        pid = int(pid_file.read_text().strip())
    except (OSError, ValueError):
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        return pid
    try:  # a zombie has an empty command line; a recycled pid another one
        if marker not in Path(f"/proc/{pid}/cmdline").read_bytes():
            return None
    except OSError:
        return None
    return pid


def alive(pid: int) -> bool:
    """The process runs and is not a zombie (reaped first when it is our child: a test's, or
    an `up` that failed)."""
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except (FileNotFoundError, IndexError):
        return False


def terminate(pid: int, what: str, timeout_s: float) -> None:
    """SIGTERM to `pid`, then SIGKILL when it still runs after `timeout_s` (`what` names it in
    the warning)."""
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and alive(pid):
        time.sleep(0.2)
    if alive(pid):
        log.warning("%s pid %s ignored SIGTERM for %ss; killing it", what, pid, timeout_s)
        os.kill(pid, signal.SIGKILL)


def stop(pid: int | None, pid_file: Path, what: str, timeout_s: float) -> None:
    """Stop the process of `pid_file` (`pid`: its live pid, None when it is not running) with
    `terminate`, and remove the pid file; harmless when it is not running."""
    if pid is None:
        pid_file.unlink(missing_ok=True)
        log.info("%s not running", what)
        return
    terminate(pid, what, timeout_s)
    pid_file.unlink(missing_ok=True)
    log.info("%s stopped (pid %s)", what, pid)


def port_open(host: str, port: int, timeout: float = 0.5) -> bool:
    """Something accepts TCP connections on host:port."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False
