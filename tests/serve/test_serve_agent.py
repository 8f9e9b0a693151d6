"""The agent through the server: `groundup -p ... --model openai:NAME --base-url URL` against
`groundup serve --model replay:FILE`, over real HTTP. The model's turns are scripted; the
agent, its provider, the server, its wire format and the tools are real: the bug is fixed on
disk and the tests pass."""

import json
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parents[1] / "agent"))
from agent_testlib import BUGGY, PY, call, make_repo, run_cli, turn  # noqa: E402
from serve_testlib import Server, replay_script  # noqa: E402


def test_the_agent_fixes_a_bug_through_groundup_serve(tmp_path):
    repo = make_repo(tmp_path / "repo", BUGGY)
    spec = replay_script(tmp_path / "turns.jsonl", [
        turn(call("bash", command=f"{PY} test_calc.py"), content="Running the tests."),
        turn(call("read_file", path="calc.py")),
        turn(call("edit_file", path="calc.py", old_string="a - b", new_string="a + b")),
        turn(call("bash", command=f"{PY} test_calc.py")),
        {"content": "Fixed `add`: it subtracted."},
    ])
    with Server("--model", spec, "--name", "scripted") as server:
        p = run_cli(["-p", "fix the failing test", "--model", "openai:scripted", "--base-url", server.base_url,
                     "--permission-mode", "yolo", "--output-format", "json"], repo, tmp_path, timeout=120)
        assert p.returncode == 0, p.stderr
        out = json.loads(p.stdout)
        assert out["result"] == "Fixed `add`: it subtracted." and out["num_steps"] == 5
        m = server.metrics()
        # every one of the agent's five requests was a valid chat completion to this server
        assert m['groundup_requests_total{endpoint="/v1/chat/completions",status="200"}'] == 5
        assert not [k for k in m if k.startswith("groundup_requests_total") and 'status="4' in k]
    assert "a + b" in (repo / "calc.py").read_text()
    t = subprocess.run([sys.executable, "test_calc.py"], cwd=repo, capture_output=True, text=True)
    assert t.returncode == 0 and "all tests passed" in t.stdout
