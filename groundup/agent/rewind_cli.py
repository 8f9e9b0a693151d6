"""`groundup rewind`: undo the agent's work back to before one of your turns.

    groundup rewind --list                 the turns of the latest session, numbered
    groundup rewind 2                      files and conversation back to before turn 2
    groundup rewind 2 --session ID --files-only | --conversation-only | --dry-run | --yes
    groundup rewind --undo                 put back the files the last rewind overwrote

It shows what it will do first: a diff per file (now -> restored) and the bash commands whose
effects it cannot undo (checkpoints.py). In a terminal it asks before changing anything;
piped, the command itself is the confirmation. The conversation is rewound by starting a
new session that ends before turn N -- the old session is kept whole -- and `groundup
--continue` resumes from there.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from groundup.agent.build import sessions_dir
from groundup.agent.checkpoints import Checkpoints, check_turn, describe_turns, preview
from groundup.agent.session import Session
from groundup.argtypes import positive_int
from groundup.errors import UserError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = ("Restore the files the agent changed, and/or the conversation, to "
                          "how they were before turn N of a session (default: the latest).")
    parser.add_argument("turn", nargs="?", type=positive_int, metavar="N",
                        help="rewind to before this turn (see --list)")
    parser.add_argument("--list", action="store_true", help="list the session's turns")
    parser.add_argument("--undo", action="store_true",
                        help="put back the files the last rewind in this workspace overwrote "
                             "(an undo can itself be undone)")
    parser.add_argument("--session", "-s", metavar="ID",
                        help="the session (id or unique prefix; default: the latest)")
    what = parser.add_mutually_exclusive_group()
    what.add_argument("--files-only", action="store_true", help="restore files, keep the conversation")
    what.add_argument("--conversation-only", action="store_true",
                      help="rewind the conversation, leave the files as they are")
    parser.add_argument("--dry-run", action="store_true", help="show what would change, change nothing")
    parser.add_argument("--yes", "-y", action="store_true", help="do not ask for confirmation")
    parser.add_argument("--cwd", metavar="DIR", default=".", help="the workspace (default: .)")


def confirmed(args: argparse.Namespace, question: str) -> bool:
    if sys.stdin.isatty() and not args.yes:
        if input(f"{question} [y/N] ").strip().lower() not in ("y", "yes"):
            print("nothing changed")
            return False
    return True


def undo(checkpoints: Checkpoints, args: argparse.Namespace) -> int:
    session, stamp, changes = checkpoints.plan_undo()
    lines = [f"undo the rewind of {stamp.split('.')[0]} (session {session}):"]
    lines += [c.diff() for c in changes] or ["files: nothing to put back (they are as the rewind "
                                             "found them)"]
    print("\n".join(lines))
    if args.dry_run or not changes or not confirmed(args, "undo?"):
        return 0 if args.dry_run or not changes else 1
    checkpoints.apply(session, changes)
    print(f"put back {len(changes)} file(s); the conversation before the rewind is session "
          f"{session} (`groundup --resume {session}`)")
    return 0


def run(args: argparse.Namespace) -> int:
    root = Path(args.cwd).expanduser()
    if not root.is_dir():
        raise UserError(f"workspace {args.cwd} does not exist or is not a directory")
    root = root.resolve()
    session = (Session.find(sessions_dir(root), args.session) if args.session
               else Session.latest(sessions_dir(root)))
    checkpoints = Checkpoints(root)
    if args.undo:
        if args.turn is not None or args.list or args.conversation_only or args.session:
            raise UserError("--undo takes no turn, --list, --session or --conversation-only: it "
                            "undoes the last rewind's file changes (`groundup rewind --undo`)")
        return undo(checkpoints, args)
    if args.list or args.turn is None:
        print(f"session {session.id}:")
        print("\n".join(describe_turns(session, checkpoints)) or "  (no turns yet)")
        if args.turn is None and not args.list:
            print("rewind with `groundup rewind N` (to before turn N)")
        return 0
    check_turn(session, args.turn)
    changes, bash = checkpoints.plan(session.id, args.turn)
    if not args.conversation_only:
        print(preview(changes, bash, args.turn))
    if args.dry_run:
        return 0
    if not confirmed(args, "rewind?"):
        return 1
    if not args.conversation_only:
        checkpoints.apply(session.id, changes)
        print(f"restored {len(changes)} file(s)")
    if not args.files_only:
        new = checkpoints.fork(session, args.turn, sessions_dir(root))
        print(f"conversation: new session {new.id} ends before turn {args.turn} (session "
              f"{session.id} is kept); continue it with `groundup --continue`")
    return 0
