"""Summarising compaction (groundup/agent/summary.py) against a scripted OpenAI-compatible
server: what the real provider sends before, during and after the summary, and what the
session file keeps."""

import json
import subprocess

from agent_testlib import BUGGY, GROUNDUP, PY, cli_env, make_repo
from groundup.agent.session import Session
from scripted_api import ScriptedAPI, Turn

SUMMARY = "The user wants the tests fixed. calc.py line 2 returns a - b; add should return a + b."


def usage(prompt):
    return {"prompt_tokens": prompt, "completion_tokens": 10}


def run(repo, tmp_path, api, *extra):
    (repo / ".groundup").mkdir(exist_ok=True)
    (repo / ".groundup/settings.local.json").write_text(json.dumps({"context_window": 1000}))
    p = subprocess.run([*GROUNDUP, "-p", "fix the tests", "--model", "openai:scripted",
                        "--base-url", api.url, "--permission-mode", "yolo",
                        "--output-format", "stream-json", *extra],
                       cwd=repo, env=cli_env(tmp_path), capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    return [json.loads(line) for line in p.stdout.splitlines()]


def first_turns():
    return [Turn(calls=[("read_file", {"path": "calc.py"})], usage=usage(300)),
            Turn(calls=[("grep", {"pattern": "def add"})], usage=usage(500)),
            Turn(calls=[("bash", {"command": f"{PY} test_calc.py"})], usage=usage(850))]


def test_the_session_crosses_the_limit_and_goes_on_from_the_summary(tmp_path):
    repo = make_repo(tmp_path / "repo", BUGGY)
    turns = first_turns() + [
        Turn(SUMMARY, usage=usage(900)),                                  # the summary request
        Turn(calls=[("read_file", {"path": "calc.py"})], usage=usage(200)),
        Turn(calls=[("edit_file", {"path": "calc.py", "old_string": "a - b",
                                   "new_string": "a + b"})], usage=usage(250)),
        Turn("Fixed add.", usage=usage(300))]
    with ScriptedAPI("openai", turns) as api:
        events = run(repo, tmp_path, api)
    assert events[-1]["result"] == "Fixed add."
    assert "a + b" in (repo / "calc.py").read_text()
    reqs = api.requests
    assert len(reqs) == 7
    ask = reqs[3]
    assert "tools" not in ask                                           # a summary, not a step
    assert ask["messages"][-1]["content"].startswith("Your context is nearly full.")
    assert len(ask["messages"]) == 9                 # system, task, 3 x (call, result), the ask
    after = reqs[4]["messages"]
    assert [m["role"] for m in after] == ["system", "user"]             # the old turns are gone
    assert after[1]["content"].endswith(SUMMARY)
    assert "summarised to fit the context window" in after[1]["content"]
    assert [m["role"] for m in reqs[6]["messages"]] == ["system", "user", "assistant", "tool",
                                                         "assistant", "tool"]
    compact = next(e for e in events if e["type"] == "compact")
    assert compact["reason"] == "auto" and compact["replaced"] == 8
    # the session file keeps every message: the old turns, the summary, what followed
    msgs = Session.latest(repo / ".groundup/sessions").load()
    assert [m["role"] for m in msgs] == ["system", "user"] + ["assistant", "tool"] * 3 + \
        ["user"] + ["assistant", "tool"] * 2 + ["assistant"]
    assert msgs[8]["summary"] is True and msgs[8]["content"] == after[1]["content"]
    assert "all tests passed" not in msgs[7]["content"] and "AssertionError" in msgs[7]["content"]


def test_a_bad_summary_falls_back_to_the_stubbed_view(tmp_path):
    repo = make_repo(tmp_path / "repo", BUGGY)
    turns = first_turns() + [Turn("", usage=usage(900)),                 # an empty "summary"
                             Turn("Giving up.", usage=usage(300))]
    with ScriptedAPI("openai", turns) as api:
        events = run(repo, tmp_path, api)
    compact = next(e for e in events if e["type"] == "compact")
    assert compact["summary"] is None and compact["problem"] == "the model's summary was empty"
    assert len(api.requests) == 5                          # and it is not asked again
    stubbed = api.requests[4]["messages"]
    assert len(stubbed) == 8                                            # every turn still there...
    assert stubbed[3]["content"].startswith("[old read_file output elided")   # ...old output stubbed
    assert "AssertionError" in stubbed[7]["content"]                    # the recent ones kept
    assert not any(m.get("summary") for m in Session.latest(repo / ".groundup/sessions").load())


def test_an_overflow_is_answered_with_a_summary_first(tmp_path):
    repo = make_repo(tmp_path / "repo", BUGGY)
    turns = first_turns()[:2] + [
        Turn("This model's maximum context length is 1000 tokens; your messages resulted in 1200",
             status=400),
        Turn(SUMMARY, usage=usage(700)),
        Turn("Summarised and done.", usage=usage(200))]
    with ScriptedAPI("openai", turns) as api:
        events = run(repo, tmp_path, api)
    assert events[-1]["result"] == "Summarised and done."
    assert next(e for e in events if e["type"] == "compact")["reason"] == "overflow"
    assert [m["role"] for m in api.requests[4]["messages"]] == ["system", "user"]


def test_small_models_are_not_asked_to_summarise(tmp_path):
    repo = make_repo(tmp_path / "repo", BUGGY)
    turns = first_turns() + [Turn("Done without a summary.", usage=usage(300))]
    with ScriptedAPI("openai", turns) as api:
        events = run(repo, tmp_path, api, "--compact-prompt")
    assert not any("Your context is nearly full" in json.dumps(r) for r in api.requests)
    assert events[-1]["result"] == "Done without a summary."
