"""`python -m trainer_svc.guard CMD [ARG ...]`: become CMD, to be SIGKILLed by the kernel when the service dies.

The service starts torchrun through this, because torchrun does not ask for that itself.
Asking in the forked child before exec (subprocess's `preexec_fn`) is not safe in a parent
with threads, and the trainer has gRPC's: it crashed the child with SIGSEGV in about one
start in four. Here the request is made in a process of its own, then `exec` keeps it.
"""

from __future__ import annotations

import os
import sys

from trainer_svc.child import die_with_parent


def main(argv: list[str]) -> None:
    die_with_parent()
    if os.getppid() == 1:  # the service died before the request was made: nobody would stop us
        sys.exit("trainer_svc.guard: the trainer service is gone; not starting training")
    os.execvp(argv[0], argv)


if __name__ == "__main__":
    main(sys.argv[1:])
