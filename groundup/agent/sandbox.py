"""The sandboxed shell: every `bash` call runs inside bubblewrap (`bwrap`, Debian's
`bubblewrap`), the unprivileged container tool Flatpak is built on.

Switched on by `"sandbox": true` in the settings or `groundup --sandbox`; `"sandbox":
{"enabled": true, "network": true}` lets commands reach the network. What a command sees:

    /                       read-only (the system, your tools, your home: readable, not writable)
    the workspace           writable (and every --add-dir)
    /tmp, /var/tmp          empty and private, gone when the command ends
    ~/.ssh, ~/.aws, ...     hidden (SECRET_DIRS: empty directories in their place; SECRET_FILES
                            such as ~/.netrc cannot be opened)
    .env, *.pem, id_rsa...  in the workspace: covered by a device node that cannot be opened
                            ("Permission denied"), by the secret and deny rules of
                            permissions.py -- an allow rule opens the tool and the shell
                            alike. (.git/config stays readable to commands: git needs it.)
    network                 none but its own loopback, unless allowed
    processes               its own pid namespace: nothing outside is visible, and when the
                            command ends or is killed, every process it started dies with it

Design choices:
- The pid namespace closes the two gaps of the plain shell (shell.py): a process that calls
  setsid() leaves the process group the timeout kills, but it cannot leave the namespace,
  and the kernel kills the whole namespace when its first process ends; `--die-with-parent`
  takes the sandbox down if the agent itself is killed, so no command is orphaned.
- No silent fallback: `--sandbox` on a machine without a working bwrap refuses to start and
  says what to install. A user who asked for a sandbox must never get none.
- Read-only rather than hidden for most of the filesystem: compilers, interpreters and
  virtual environments live all over it (often under $HOME), and a sandbox that cannot run
  the tests is switched off by its user. What is hidden is where credentials live.
- The workspace's secret files are found per command (a walk that skips .git, virtual
  environments and node_modules), so a `.env` created since is hidden too.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from groundup.agent.permissions import Permissions
from groundup.errors import UserError

SECRET_DIRS = (".ssh", ".aws", ".gnupg", ".azure", ".kube", ".docker", ".config/gcloud",
               ".config/gh", ".password-store")
SECRET_FILES = (".netrc", ".git-credentials", ".pypirc", ".npmrc")
SKIP_DIRS = {".git", ".venv", "venv", "node_modules", "__pycache__", ".groundup", ".tox",
             ".mypy_cache", ".pytest_cache"}
MAX_WALK = 50_000          # entries looked at per command when hunting for secret files


class SandboxUnavailable(UserError):
    """--sandbox was asked for and bubblewrap cannot give it."""


@dataclass
class Sandbox:
    root: Path
    extra_dirs: tuple[Path, ...] = ()
    network: bool = False
    permissions: Permissions | None = None    # its secret and deny rules hide files
    home: Path = field(default_factory=lambda: Path(os.path.expanduser("~")))

    def check(self) -> None:
        """Refuse to start without a working bwrap (missing, or no user namespaces)."""
        exe = shutil.which("bwrap")
        if exe is None:
            raise SandboxUnavailable(
                "the sandbox needs bubblewrap, which is not installed: `apt-get install "
                "bubblewrap` (Debian/Ubuntu) or `dnf install bubblewrap`; or run without "
                "--sandbox / \"sandbox\": true")
        probe = subprocess.run(self.wrap(["true"]), capture_output=True, text=True, timeout=30)
        if probe.returncode != 0:
            raise SandboxUnavailable(
                f"bubblewrap is installed but cannot make a sandbox here ({probe.stderr.strip()}); "
                "it needs unprivileged user namespaces (sysctl kernel.unprivileged_userns_clone=1) "
                "or a container that allows them")

    def wrap(self, argv: list[str]) -> list[str]:
        """The command line that runs `argv` inside the sandbox, in the workspace."""
        args = ["bwrap", "--die-with-parent", "--new-session", "--unshare-pid", "--unshare-ipc",
                "--unshare-uts"]
        if not self.network:
            args.append("--unshare-net")
        args += ["--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc",
                 "--tmpfs", "/tmp", "--tmpfs", "/var/tmp"]
        args += self.hide_home_secrets()
        for d in (self.root, *self.extra_dirs):      # after /tmp: a workspace may live there
            args += ["--bind", str(d), str(d)]
        for f in self.secret_files():                 # after the workspace bind: on top of it
            # /dev/null bound read-only is mounted nodev: opening it fails with EACCES
            args += ["--ro-bind", "/dev/null", str(f)]
        return args + ["--chdir", str(self.root), "--", *argv]

    def hide_home_secrets(self) -> list[str]:
        out = []
        for name in SECRET_DIRS:
            if (self.home / name).is_dir():
                out += ["--tmpfs", str(self.home / name)]
        for name in SECRET_FILES:
            if (self.home / name).is_file():
                out += ["--ro-bind", "/dev/null", str(self.home / name)]
        return out

    def secret_files(self) -> list[Path]:
        """Files in the workspace that the permission rules keep from being read."""
        if self.permissions is None:
            return []
        found, seen = [], 0
        for dirpath, dirnames, filenames in os.walk(self.root):
            dirnames[:] = [d for d in dirnames if d not in SKIP_DIRS]
            for name in filenames:
                seen += 1
                path = Path(dirpath) / name
                rel = path.relative_to(self.root).as_posix()
                if not path.is_symlink() and not self.permissions.readable(rel):
                    found.append(path)
            if seen > MAX_WALK:
                break
        return found
