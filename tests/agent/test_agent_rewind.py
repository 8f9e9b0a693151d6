"""Checkpoints and `groundup rewind` (groundup/agent/checkpoints.py) on real files: bytes,
modes and line endings come back exactly; the conversation resumes from the rewound point."""

import os

from agent_testlib import call, make_repo, run_cli, script, turn
from groundup.agent.session import Session

FILES = {"a.py": "def f():\r\n    return 1\r\n",          # CRLF line endings
         "run.sh": "#!/bin/sh\necho one\n",                  # executable
         "notes.txt": "no final newline"}


def snapshot(repo):
    return {name: ((repo / name).read_bytes(), os.stat(repo / name).st_mode & 0o7777)
            for name in FILES}


def two_turns(repo, tmp_path):
    """Turn 1 edits a.py and creates new.txt; turn 2 edits run.sh, notes.txt, a.py again and
    runs a bash command that writes a file."""
    (repo / "run.sh").chmod(0o755)
    (repo / "notes.txt").chmod(0o600)
    first = script(tmp_path / "t1.jsonl", [
        turn(call("read_file", path="a.py")),
        turn(call("edit_file", path="a.py", old_string="return 1", new_string="return 2"),
             call("write_file", path="new.txt", content="created\n")),
        {"content": "turn one done"}])
    p = run_cli(["-p", "first", "--model", first, "--permission-mode", "yolo"], repo, tmp_path)
    assert p.returncode == 0, p.stderr
    second = script(tmp_path / "t2.jsonl", [
        turn(call("read_file", path="run.sh"), call("read_file", path="notes.txt"),
             call("read_file", path="a.py")),
        turn(call("edit_file", path="run.sh", old_string="one", new_string="two")),
        turn(call("edit_file", path="notes.txt", old_string="final", new_string="last")),
        turn(call("edit_file", path="a.py", old_string="return 2", new_string="return 3")),
        turn(call("bash", command="echo by-bash > made-by-bash.txt")),
        {"content": "turn two done"}])
    p = run_cli(["-c", "-p", "second", "--model", second, "--permission-mode", "yolo"], repo, tmp_path)
    assert p.returncode == 0, p.stderr
    assert (repo / "a.py").read_bytes() == b"def f():\r\n    return 3\r\n"
    assert (repo / "notes.txt").read_text() == "no last newline"


def test_rewind_to_the_start_restores_three_files_byte_for_byte(tmp_path):
    repo = make_repo(tmp_path / "repo", FILES)
    two_turns(repo, tmp_path)
    listing = run_cli(["rewind", "--list"], repo, tmp_path)
    assert listing.returncode == 0
    assert "  1  first  files: a.py, new.txt" in listing.stdout
    assert "  2  second  files: run.sh, notes.txt, a.py  bash: 1 command(s)" in listing.stdout

    dry = run_cli(["rewind", "1", "--dry-run"], repo, tmp_path)
    assert dry.returncode == 0, dry.stderr
    assert "-    return 3" in dry.stdout and "+    return 1" in dry.stdout
    assert "remove new.txt (created by the agent)" in dry.stdout
    assert "not covered: 1 bash command(s)" in dry.stdout and "$ echo by-bash" in dry.stdout
    assert (repo / "new.txt").exists()                               # a dry run changes nothing

    p = run_cli(["rewind", "1"], repo, tmp_path)
    assert p.returncode == 0, p.stderr
    assert "restored 4 file(s)" in p.stdout
    after = snapshot(repo)
    assert after == {"a.py": (FILES["a.py"].encode(), 0o644), "run.sh": (FILES["run.sh"].encode(), 0o755),
                     "notes.txt": (FILES["notes.txt"].encode(), 0o600)}, after
    assert not (repo / "new.txt").exists()
    assert (repo / "made-by-bash.txt").exists()                       # named as not covered

    # the conversation resumes from before turn 1: a new session, the old one kept whole
    sessions = Session.list(repo / ".groundup" / "sessions")
    assert len(sessions) == 2
    old = [m for m in sessions[0].load() if m["role"] == "user"]
    assert [m["content"] for m in old] == ["first", "second"]
    p = run_cli(["-c", "-p", "third", "--model", script(tmp_path / "t3.jsonl", [{"content": "ok"}])],
                repo, tmp_path)
    assert p.returncode == 0, p.stderr
    resumed = Session.latest(repo / ".groundup" / "sessions").load()
    assert [m["content"] for m in resumed if m["role"] == "user"] == ["third"]
    assert resumed[0]["role"] == "system"


def test_rewind_one_turn_keeps_the_first(tmp_path):
    repo = make_repo(tmp_path / "repo", FILES)
    two_turns(repo, tmp_path)
    p = run_cli(["rewind", "2"], repo, tmp_path)
    assert p.returncode == 0, p.stderr
    assert (repo / "a.py").read_bytes() == b"def f():\r\n    return 2\r\n"    # turn 1's edit stays
    assert (repo / "new.txt").read_text() == "created\n"
    assert (repo / "run.sh").read_text() == FILES["run.sh"]
    assert os.stat(repo / "run.sh").st_mode & 0o777 == 0o755
    resumed = Session.latest(repo / ".groundup" / "sessions").load()
    assert [m["content"] for m in resumed if m["role"] == "user"] == ["first"]
    assert resumed[-1] == {"role": "assistant", "content": "turn one done"}
    # the new session carries turn 1's checkpoints: it can be rewound further
    new_id = Session.latest(repo / ".groundup" / "sessions").id
    again = run_cli(["rewind", "1", "--files-only", "--session", new_id], repo, tmp_path)
    assert again.returncode == 0, again.stderr
    assert (repo / "a.py").read_bytes() == FILES["a.py"].encode()


def test_rewind_errors_are_clear(tmp_path):
    repo = make_repo(tmp_path / "repo", FILES)
    p = run_cli(["rewind", "1"], repo, tmp_path)
    assert p.returncode == 2 and "no session" in p.stderr
    two_turns(repo, tmp_path)
    p = run_cli(["rewind", "3"], repo, tmp_path)
    assert p.returncode == 2 and "turn 3 does not exist" in p.stderr and "turns 1-2" in p.stderr
    p = run_cli(["rewind", "1", "--session", "nope"], repo, tmp_path)
    assert p.returncode == 2 and "no session 'nope'" in p.stderr


def test_undo_puts_back_what_the_rewind_overwrote_and_can_be_undone(tmp_path):
    repo = make_repo(tmp_path / "repo", FILES)
    two_turns(repo, tmp_path)
    before = snapshot(repo) | {"new.txt": ((repo / "new.txt").read_bytes(), 0o644)}
    assert run_cli(["rewind", "1"], repo, tmp_path).returncode == 0
    assert not (repo / "new.txt").exists()

    dry = run_cli(["rewind", "--undo", "--dry-run"], repo, tmp_path)
    assert dry.returncode == 0, dry.stderr
    assert "+    return 3" in dry.stdout and "restore new.txt (deleted since)" in dry.stdout
    assert not (repo / "new.txt").exists()                            # a dry run changes nothing

    p = run_cli(["rewind", "--undo"], repo, tmp_path)
    assert p.returncode == 0, p.stderr
    assert "put back 4 file(s)" in p.stdout
    back = snapshot(repo) | {"new.txt": ((repo / "new.txt").read_bytes(), 0o644)}
    assert back == before                                             # bytes and modes, exactly

    # an undo is a rewind: undoing it again goes back to the rewound files
    assert run_cli(["rewind", "--undo"], repo, tmp_path).returncode == 0
    assert (repo / "a.py").read_bytes() == FILES["a.py"].encode() and not (repo / "new.txt").exists()


def test_undo_errors_are_clear(tmp_path):
    repo = make_repo(tmp_path / "repo", FILES)
    two_turns(repo, tmp_path)
    p = run_cli(["rewind", "--undo"], repo, tmp_path)
    assert p.returncode == 2 and "nothing to undo: no rewind has been made" in p.stderr
    p = run_cli(["rewind", "1", "--undo"], repo, tmp_path)
    assert p.returncode == 2 and "--undo takes no turn" in p.stderr
