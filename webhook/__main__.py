"""`python -m webhook` and the `multinode-webhook` console script (`run`): the same command line.

Importing the command line takes a moment (the web framework, the YAML and Kubernetes
libraries); Ctrl-C in that moment ends the command quietly with exit 130, as it does once
`main` runs, so this module installs that handling before it imports anything heavy.
"""

import os
import signal
import sys
from types import FrameType

EXIT_INTERRUPTED = 130  # 128 + SIGINT, as a shell reports a command Ctrl-C ended


def _interrupted(signum: int, frame: FrameType | None) -> None:
    # Nothing is written yet and no worker started: there is nothing to flush or stop.
    os._exit(EXIT_INTERRUPTED)


def run() -> int:
    signal.signal(signal.SIGINT, _interrupted)
    # A Ctrl-C held back by whatever started this process (a mask outlives exec) would never
    # arrive: the command waits on an API server or a stdin for ever.
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
    from webhook.cli import main  # noqa: PLC0415 - after the handler, which covers the import

    try:
        signal.signal(signal.SIGINT, signal.default_int_handler)  # main's own handling
        return main()
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(run())
