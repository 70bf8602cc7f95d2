"""Worker processes that end with the process that started them."""

from __future__ import annotations

import os
import threading
import time

_watching: int | None = None
#: Seconds between checks that the parent process is still alive.
POLL_SECONDS = 1.0


def exit_with_parent(parent_pid: int) -> None:
    """In a worker process started by ``parent_pid`` (a loky worker), exit as soon as that parent dies.

    Called at the start of every task sent to workers, with the pid of the process that sent
    it; does nothing in that process itself or where the parent is another process (e.g. a
    dask worker under its nanny, possibly on another machine). Without it, loky workers of a
    SIGKILLed ``skdynemb extract --n-jobs 2`` keep running (and holding their memory).
    """
    global _watching
    if os.getpid() == parent_pid or os.getppid() != parent_pid or _watching == parent_pid:
        return
    _watching = parent_pid

    def watch():
        while os.getppid() == parent_pid:
            time.sleep(POLL_SECONDS)
        os._exit(1)  # the parent is gone (this process was re-parented): nobody reads our results

    threading.Thread(target=watch, name="skdynemb-exit-with-parent", daemon=True).start()
