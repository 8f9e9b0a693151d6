"""The one place where an exception becomes what the user sees (groundup.errors.guard), and
the argument checks every command shares (groundup.argtypes)."""

import argparse
import errno
import subprocess
import sys

import pytest

from groundup import argtypes
from groundup.errors import Failure, Terminated, UserError, guard


def fail_with(exc):
    def main():
        raise exc
    return main


@pytest.mark.parametrize("exc,code,line", [
    (UserError("--steps must be at least 1"), 2, "groundup: error: --steps must be at least 1"),
    (Failure("the server stalled"), 1, "groundup: error: the server stalled"),
    (KeyboardInterrupt(), 130, "groundup: interrupted"),
    (Terminated(), 143, "groundup: terminated"),
    (OSError(errno.ENOSPC, "No space left on device", "/data/x"), 1,
     "groundup: error: No space left on device: /data/x"),
    (UserError("two\nlines"), 2, "groundup: error: two lines"),
])
def test_each_outcome_is_one_line_and_its_exit_code(exc, code, line, capsys):
    assert guard(fail_with(exc), signals=False) == code
    err = capsys.readouterr().err.strip()
    assert err == line


def test_a_bug_is_one_line_naming_a_log_that_holds_the_traceback(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("GROUNDUP_LOG_DIR", str(tmp_path / "logs"))
    monkeypatch.delenv("GROUNDUP_TRACEBACK", raising=False)

    def buggy():
        return {}["missing"]
    assert guard(buggy, signals=False) == 1
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert err.startswith("groundup: internal error: KeyError: 'missing'")
    logs = list((tmp_path / "logs").glob("groundup-crash-*.log"))
    assert len(logs) == 1 and str(logs[0]) in err
    text = logs[0].read_text()
    assert "Traceback" in text and 'return {}["missing"]' in text


def test_a_bug_with_no_writable_log_dir_still_reports(tmp_path, monkeypatch, capsys):
    (tmp_path / "file").write_text("x")
    monkeypatch.setenv("GROUNDUP_LOG_DIR", str(tmp_path / "file" / "logs"))   # cannot be created
    assert guard(fail_with(ZeroDivisionError("boom")), signals=False) == 1
    err = capsys.readouterr().err
    assert "internal error: ZeroDivisionError: boom" in err
    assert "groundup-crash-" in err or "Traceback" in err    # the temp dir, else printed


def test_sigterm_is_143_in_a_real_process(tmp_path):
    code = ("import os, signal, time\nfrom groundup.errors import guard\n"
            "def main():\n    os.kill(os.getpid(), signal.SIGTERM)\n    time.sleep(30)\n"
            "raise SystemExit(guard(main))\n")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert p.returncode == 143 and p.stderr.strip() == "groundup: terminated"


def test_argparse_errors_are_one_line(capsys):
    parser = argtypes.Parser(prog="groundup demo")
    parser.add_argument("--steps", type=argtypes.positive_int)
    with pytest.raises(SystemExit) as e:
        parser.parse_args(["--steps", "-3"])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert err.strip() == ("groundup: error: argument --steps: must be at least 1, got -3 "
                           "(see `groundup demo --help`)")


@pytest.mark.parametrize("check,text,ok", [
    (argtypes.positive_int, "3", 3), (argtypes.positive_int, "0", None), (argtypes.positive_int, "-3", None),
    (argtypes.positive_int, "2.5", None), (argtypes.nonneg_int, "0", 0),
    (argtypes.int_range(2, 4), "5", None), (argtypes.int_range(2, 4), "4", 4),
    (argtypes.positive_float, "0.5", 0.5), (argtypes.positive_float, "0", None),
    (argtypes.positive_float, "nan", None), (argtypes.positive_float, "inf", None),
    (argtypes.probability, "1", 1.0), (argtypes.probability, "0", None), (argtypes.fraction, "0", 0.0),
    (argtypes.float_range(0, 1, high_open=True), "1", None),
    (argtypes.device, "cuda:1", "cuda:1"), (argtypes.device, "gpu", None),
])
def test_number_types(check, text, ok):
    if ok is None:
        with pytest.raises(argparse.ArgumentTypeError):
            check(text)
    else:
        assert check(text) == ok


def test_path_types(tmp_path):
    f = tmp_path / "f.txt"
    f.write_text("x")
    d = tmp_path / "d"
    d.mkdir()
    assert argtypes.existing_file(str(f)) == str(f)
    assert argtypes.existing_dir(str(d)) == str(d)
    assert argtypes.output_dir(str(tmp_path / "new" / "deeper")) == str(tmp_path / "new" / "deeper")
    assert argtypes.output_file(str(tmp_path / "out.jsonl")) == str(tmp_path / "out.jsonl")
    for check, path, says in [
        (argtypes.existing_file, d, "is a directory"), (argtypes.existing_file, tmp_path / "no", "does not exist"),
        (argtypes.existing_dir, f, "is a file"), (argtypes.existing_path, tmp_path / "no", "does not exist"),
        (argtypes.output_dir, f, "is a file"), (argtypes.output_dir, f / "sub", "is a file"),
        (argtypes.output_file, d, "is a directory"), (argtypes.model_dir, f, "is a file"),
        (argtypes.model_dir, d, "no config.json"), (argtypes.existing_file, "", "not a usable path"),
    ]:
        with pytest.raises(argparse.ArgumentTypeError, match=says):
            check(str(path))
