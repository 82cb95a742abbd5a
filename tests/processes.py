"""Helpers for tests that start real processes: bounded waits, and stopping a process by its pid."""

import os
import signal
import socket
import subprocess
import time


def wait_for(condition, seconds: float, what: str):
    """The first true value of `condition()`, polled for at most `seconds`; else an AssertionError naming `what`."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out after {seconds}s waiting for {what}")


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def stop(process: subprocess.Popen, group: bool = False):
    """Kill `process` by its pid (its whole process group when it leads one: `group`) unless it ended; reap it."""
    if process.poll() is None:
        if group:
            os.killpg(process.pid, signal.SIGKILL)
        else:
            process.kill()
    process.wait(timeout=10)
