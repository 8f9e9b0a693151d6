"""What the user sees when something goes wrong, and the exit code that says what it was.

Every layer raises one of these; `guard` (called once, by `groundup`'s entry points) is the
one place that turns an exception into what the terminal shows:

    raised                          printed on stderr                                 exit
    UserError (bad input)           groundup: error: what was wrong -- what to do       2
    Failure (the world failed:      groundup: error: what failed -- what to do          1
      a server, a disk, a stall)
    KeyboardInterrupt (Ctrl-C)      groundup: interrupted                               130
    Terminated (SIGTERM)            groundup: terminated                                143
    OSError the user can act on     groundup: error: No space left on device: PATH      1
      (disk full, permission, read-only filesystem)
    anything else (a bug)           groundup: internal error: TypeError: ... --         1
                                    the traceback is in LOG (please report it)

130 and 143 are what a shell reports for a process killed by SIGINT / SIGTERM (128 + signal),
so `make`, CI runners and supervisors read them right. A traceback never reaches the terminal:
it goes to a log file under $XDG_STATE_HOME/groundup/logs (or $GROUNDUP_LOG_DIR), whose path
the one line names. GROUNDUP_TRACEBACK=1 prints it as well (for developing groundup itself).

Design choices:
- One class per *outcome*, not per cause: the message carries the cause. Subclasses exist
  only where code must tell them apart (providers.base.ContextOverflow is caught by the
  agent, which compacts and retries).
- A `GroundupError` carries its own `exit_code`, so a subclass can say "this one is a
  failure, not your mistake" (providers.base.ServerError) without a table here.
"""

from __future__ import annotations

import datetime
import errno
import os
import signal
import sys
import tempfile
import threading
import traceback
from pathlib import Path
from typing import Callable

EXIT_OK, EXIT_FAILURE, EXIT_USAGE, EXIT_INTERRUPTED, EXIT_TERMINATED = 0, 1, 2, 130, 143


class GroundupError(Exception):
    """A failure explained in one line: printed as `groundup: error: ...`, exit 1."""
    exit_code = EXIT_FAILURE


class UserError(GroundupError):
    """Bad input from the user (a wrong path, a number out of range, a broken file they gave):
    printed as one clear line -- what was wrong and what to do -- exit 2."""
    exit_code = EXIT_USAGE


class Failure(GroundupError):
    """Not the user's input but the world: a server that stalls, a test run that cannot start,
    a file that vanished mid-run. One line saying what failed and what to try, exit 1."""


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised in the main thread: it unwinds like Ctrl-C (running commands are killed,
    sessions closed), but is reported as `terminated` with exit 143."""


# errno values of an OSError that is the machine's state, not a bug: the user can act on them
_ACTIONABLE = {errno.ENOSPC, errno.EACCES, errno.EPERM, errno.EROFS, errno.EDQUOT, errno.EMFILE,
               errno.ENFILE, errno.ENAMETOOLONG, errno.ELOOP}


def _raise_terminated(signum, frame) -> None:
    raise Terminated()


def install_sigterm() -> None:
    """SIGTERM raises `Terminated` in the main thread (from anywhere else it cannot be set)."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _raise_terminated)


def say(message: str, kind: str = "error") -> None:
    """One line on stderr: `groundup: error: ...` (or warning, internal error...)."""
    text = " ".join(str(message).split("\n"))        # one line, whatever the message held
    print(f"groundup: {kind}: {text}", file=sys.stderr, flush=True)


def warn(message: str) -> None:
    say(message, "warning")


def log_dir() -> Path:
    if os.environ.get("GROUNDUP_LOG_DIR"):
        return Path(os.environ["GROUNDUP_LOG_DIR"])
    state = os.environ.get("XDG_STATE_HOME") or os.path.join(os.path.expanduser("~"), ".local", "state")
    return Path(state) / "groundup" / "logs"


def write_crash_log(exc: BaseException) -> Path | None:
    """The traceback (and the command line) in a new log file; its path, or None if no
    directory we tried was writable."""
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    text = (f"groundup internal error, {datetime.datetime.now().isoformat()}\n"
            f"command: {' '.join(sys.argv)}\ncwd: {os.getcwd()}\npython: {sys.version.split()[0]}\n\n"
            + "".join(traceback.format_exception(type(exc), exc, exc.__traceback__)))
    for d in (log_dir(), Path(tempfile.gettempdir())):
        try:
            d.mkdir(parents=True, exist_ok=True)
            path = d / f"groundup-crash-{stamp}-{os.getpid()}.log"
            path.write_text(text, encoding="utf-8", errors="backslashreplace")
            return path
        except OSError:
            continue
    return None


def guard(main: Callable[[], int], signals: bool = True) -> int:
    """Run `main` and turn whatever it raises into one line and an exit code (table above).
    `signals`: also make SIGTERM raise `Terminated` (a process's entry point does this)."""
    if signals:
        install_sigterm()
    try:
        return int(main() or 0)
    except GroundupError as e:
        say(str(e))
        return e.exit_code
    except Terminated:
        print("groundup: terminated", file=sys.stderr, flush=True)
        return EXIT_TERMINATED
    except KeyboardInterrupt:
        print("\ngroundup: interrupted", file=sys.stderr, flush=True)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # the reader went away (`| head`): not an error; keep Python from complaining at exit
        try:
            sys.stdout = open(os.devnull, "w")
        except OSError:
            pass
        return EXIT_OK
    except OSError as e:
        if e.errno not in _ACTIONABLE:
            return _internal(e)
        where = f": {e.filename}" if e.filename else ""
        say(f"{e.strerror or e}{where}")
        return EXIT_FAILURE
    except RecursionError as e:       # deep input (a JSON nested 10,000 levels) is still a bug here
        return _internal(e)
    except SystemExit as e:           # argparse's exits (2 for a bad argument, 0 for --help)
        return e.code if isinstance(e.code, int) else int(e.code is not None)
    except GeneratorExit:
        raise
    except BaseException as e:  # noqa: BLE001 -- the last line of defence: a bug, reported as one
        # (BaseException: a Rust extension's panic, e.g. tiktoken's, derives from it directly)
        return _internal(e)


def _internal(e: BaseException) -> int:
    path = write_crash_log(e)
    if os.environ.get("GROUNDUP_TRACEBACK") or path is None:
        traceback.print_exception(type(e), e, e.__traceback__, file=sys.stderr)
    first = (str(e).strip().splitlines() or [""])[0][:200]
    where = f"the traceback is in {path}" if path else "the traceback is above"
    say(f"{type(e).__name__}: {first} -- this is a bug in groundup; {where} (please report it)",
        "internal error")
    return EXIT_FAILURE
