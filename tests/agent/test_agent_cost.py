"""Prompt caching and cost (groundup/agent/cost.py, the providers' cache fields) against
scripted Anthropic- and OpenAI-compatible servers: what the real providers send, and what
the run reports."""

import json
import subprocess

import pytest

from agent_testlib import BUGGY, GROUNDUP, cli_env, make_repo
from groundup.tasks.evaluate import evaluate, format_summary
from scripted_api import ScriptedAPI, Turn


def headless(repo, tmp_path, model, api, *extra):
    env = dict(cli_env(tmp_path), ANTHROPIC_API_KEY="sk-test", OPENAI_API_KEY="sk-test")
    p = subprocess.run([*GROUNDUP, "-p", "fix calc", "--model", model, "--base-url", api.url,
                        "--permission-mode", "yolo", "--output-format", "json", *extra],
                       cwd=repo, env=env, capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    return json.loads(p.stdout)


def markers(request):
    """Where the request asks for cache breakpoints: ("system"|"tools"|message index, block)."""
    found = [("system", i) for i, b in enumerate(request.get("system") or []) if "cache_control" in b]
    found += [("tools", i) for i, t in enumerate(request.get("tools") or []) if "cache_control" in t]
    for m, msg in enumerate(request["messages"]):
        found += [(m, i) for i, b in enumerate(msg["content"]) if "cache_control" in b]
    return found


def without_markers(value):
    if isinstance(value, dict):
        return {k: without_markers(v) for k, v in value.items() if k != "cache_control"}
    if isinstance(value, list):
        return [without_markers(v) for v in value]
    return value


ANTHROPIC_TURNS = [
    Turn(calls=[("read_file", {"path": "calc.py"})],
         usage={"input_tokens": 50, "cache_creation_input_tokens": 2000,
                "cache_read_input_tokens": 0, "output_tokens": 30}),
    Turn("Read it; add subtracts.",
         usage={"input_tokens": 40, "cache_creation_input_tokens": 300,
                "cache_read_input_tokens": 2000, "output_tokens": 20})]


def test_anthropic_requests_carry_cache_breakpoints_and_cost_uses_cache_prices(tmp_path):
    repo = make_repo(tmp_path / "repo", BUGGY)
    with ScriptedAPI("anthropic", ANTHROPIC_TURNS) as api:
        out = headless(repo, tmp_path, "anthropic:claude-sonnet-4-5", api)
    first, second = api.requests
    # the system prompt (after the tools) and the newest block of the conversation
    assert markers(first) == [("system", 0), (0, 0)]
    assert markers(second) == [("system", 0), (2, 0)]                 # the tool_result block
    assert second["messages"][2]["content"][0]["type"] == "tool_result"
    assert first["system"][0]["cache_control"] == {"type": "ephemeral"}
    # what the first request wrote to the cache is exactly where the second one starts
    assert without_markers(second["messages"][:1]) == without_markers(first["messages"])
    assert without_markers(second["system"]) == without_markers(first["system"])
    assert second["tools"] == first["tools"]
    # usage counts cache reads and writes; the cost prices them at 0.1x and 1.25x of $3/MTok
    assert out["usage"] == {"prompt_tokens": 4390, "completion_tokens": 50,
                            "cache_read_tokens": 2000, "cache_write_tokens": 2300}
    fresh, read, write, output = 90, 2000, 2300, 50
    assert out["cost_usd"] == pytest.approx((fresh * 3 + read * 0.3 + write * 3.75 + output * 15) / 1e6)
    assert out["cost_usd"] == pytest.approx(0.010245)


def test_prices_in_the_settings_win(tmp_path):
    repo = make_repo(tmp_path / "repo", BUGGY)
    (repo / ".groundup").mkdir()
    (repo / ".groundup/settings.local.json").write_text(json.dumps({"prices": {
        "anthropic:claude-sonnet-4-5": {"input": 1, "output": 2, "cache_read": 0.5, "cache_write": 1}}}))
    with ScriptedAPI("anthropic", ANTHROPIC_TURNS) as api:
        out = headless(repo, tmp_path, "anthropic:claude-sonnet-4-5", api)
    assert out["cost_usd"] == pytest.approx((90 * 1 + 2000 * 0.5 + 2300 * 1 + 50 * 2) / 1e6)
    (repo / ".groundup/settings.local.json").write_text(json.dumps({"prices": {"x": {"input": 1}}}))
    p = subprocess.run([*GROUNDUP, "-p", "x", "--model", "replay:none.jsonl"], cwd=repo,
                       env=cli_env(tmp_path), capture_output=True, text=True)
    assert p.returncode == 2 and "prices.x needs \"input\" and \"output\"" in p.stderr


def test_openai_cached_tokens_and_the_eval_summary_cost_per_solved_task(tmp_path):
    task = tmp_path / "tasks" / "t1"
    (task / "repo").mkdir(parents=True)
    (task / "repo" / "ops.py").write_text("def add(a, b):\n    return a - b\n")
    (task / "repo" / "test_ops.py").write_text(
        "import unittest\nfrom ops import add\n\n\nclass T(unittest.TestCase):\n"
        "    def test_add(self):\n        self.assertEqual(add(2, 3), 5)\n")
    (task / "task.json").write_text(json.dumps({"id": "t1", "problem_statement": "add is wrong",
                                                "fail_to_pass": ["test_ops.T.test_add"],
                                                "pass_to_pass": []}))
    usage = {"prompt_tokens": 1000, "completion_tokens": 50,
             "prompt_tokens_details": {"cached_tokens": 800}}
    turns = [Turn(calls=[("read_file", {"path": "ops.py"})], usage=usage),
             Turn(calls=[("edit_file", {"path": "ops.py", "old_string": "a - b",
                                        "new_string": "a + b"})], usage=usage),
             Turn("fixed", usage=usage)]
    with ScriptedAPI("openai", turns) as api:
        summary = evaluate("openai:gpt-4o-mini", tmp_path / "tasks", tmp_path / "out",
                           model_options={"base_url": api.url}, progress=False)
    assert summary["solved"] == 1
    per_turn = (200 * 0.15 + 800 * 0.075 + 50 * 0.60) / 1e6           # gpt-4o-mini's prices
    assert summary["cost_usd"] == pytest.approx(3 * per_turn)
    assert summary["cost_per_solved_usd"] == pytest.approx(3 * per_turn)
    row = json.loads((tmp_path / "out" / "results.jsonl").read_text())
    assert row["cache_read_tokens"] == 2400
    assert "cost: $0.0004, $0.0004 per solved task" in format_summary(summary)
