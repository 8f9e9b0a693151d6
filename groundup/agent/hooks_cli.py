"""`groundup hooks [--approve]`: list the hooks the agent would run here, and approve the
project's.

    $ groundup hooks
    PreToolUse [bash]: ./guard.sh  (timeout 10s, /repo/.groundup/settings.json)  NOT APPROVED
    $ groundup hooks --approve

Hooks from the committed `.groundup/settings.json` arrive with a clone, so they run only
after the user has read them and said yes (hooks.py); the interactive mode asks at start,
headless runs (`-p`) need this command once -- and again whenever those hooks change.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from groundup.agent.hooks import is_trusted, trust
from groundup.agent.prompt import config_dir
from groundup.agent.settings import load_settings
from groundup.errors import UserError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = ("List the hooks configured for a workspace (all settings files) and "
                          "whether the project's are approved; --approve approves them.")
    parser.add_argument("--cwd", metavar="DIR", default=".", help="the workspace (default: .)")
    parser.add_argument("--approve", action="store_true",
                        help="approve the hooks of the project's .groundup/settings.json as "
                             "they are now")


def run(args: argparse.Namespace) -> int:
    root = Path(args.cwd).expanduser()
    if not root.is_dir():
        raise UserError(f"workspace {args.cwd} does not exist or is not a directory")
    root = root.resolve()
    hooks = load_settings(root).hooks
    if not hooks:
        print("no hooks configured (see `hooks` in .groundup/settings.json, docs/06-agent.md)")
        return 0
    trusted = is_trusted(config_dir(), root, hooks)
    if args.approve and not trusted:
        trust(config_dir(), root, hooks)
        trusted = True
    for h in hooks:
        print(h.describe() + ("  NOT APPROVED" if h.project and not trusted else ""))
    if not trusted:
        print("the project's hooks do not run until approved: groundup hooks --approve")
    return 0
