"""Run `llama_cpp.server` as `python -m llama_cpp.server` would, with two safeguards.

Usage: python _launch.py PARENT_PID [llama_cpp.server arguments...]

- The server exits when PARENT_PID (the test process) is gone, so a test run
  that is killed does not leave engines running on a shared machine.
- Environment variables that llama_cpp.server's settings would read (it uses
  pydantic-settings without a prefix, so HOST, PORT, API_KEY, N_CTX... count)
  are removed, so the developer's environment cannot change the engine.

This file is run by path and imports nothing from the test suite.
"""

from __future__ import annotations

import os
import runpy
import sys
import threading
import time


def _exit_with_parent(parent_pid: int) -> None:
    while os.getppid() == parent_pid:
        time.sleep(0.5)
    os._exit(1)


def main() -> None:
    """Start the watchdog, clean the environment, then run the server module."""
    parent_pid = int(sys.argv.pop(1))
    threading.Thread(target=_exit_with_parent, args=(parent_pid,), daemon=True).start()

    from llama_cpp.server.settings import Settings

    setting_names = {name.upper() for name in Settings.model_fields} | {"CONFIG_FILE"}
    for key in list(os.environ):
        if key.upper() in setting_names:
            del os.environ[key]

    sys.argv[0] = "llama_cpp.server"
    runpy.run_module("llama_cpp.server", run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()
