import subprocess
import sys

from groundup.cli import COMMANDS, main


def test_help_lists_every_command(capsys):
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    for name in COMMANDS:
        assert name in out


def test_unknown_command_is_one_clear_line():
    p = subprocess.run([sys.executable, "-m", "groundup", "frobnicate"], capture_output=True, text=True)
    assert p.returncode == 2
    assert "unknown command 'frobnicate'" in p.stderr
    assert "Traceback" not in p.stderr
