"""Oracle trajectories: real tools, verified solved, and they replay through the real agent."""

from __future__ import annotations

import json

import pytest

from groundup.agent.prompt import system_prompt
from groundup.agent.loop import Agent
from groundup.chat.format import render_text
from groundup.tasks.evaluate import evaluate
from groundup.tasks.generate import generate_task
from groundup.tasks.oracle import record


def _record(tmp_path, n_per_tier: int, seed: int = 0):
    dirs = [generate_task(s, tier, "train").write(tmp_path / "tasks")
            for tier in (1, 2, 3) for s in range(n_per_tier)]
    out = tmp_path / "sft.jsonl"
    assert record(dirs, out, seed=seed, workers=2) == len(dirs)
    return dirs, [json.loads(line) for line in out.read_text().splitlines()]


def test_trajectories_use_the_agents_prompt_tools_and_format(tmp_path):
    dirs, rows = _record(tmp_path, 3)
    assert len(rows) == 9
    short_edits = []
    for row in rows:
        msgs = row["messages"]
        # the tools the agent offers a small model (compact mode), exactly
        assert row["tools"] == Agent(None, tmp_path, compact_prompt=True).toolbox.schemas()
        assert msgs[0]["role"] == "system"
        # the compact prompt the agent uses for small models, for that working copy
        assert msgs[0]["content"].startswith(system_prompt(tmp_path, compact=True).split(" in ")[0])
        assert msgs[1]["role"] == "user" and "test" in msgs[1]["content"]
        assert msgs[-1]["role"] == "assistant" and "tool_calls" not in msgs[-1]
        calls = [c for m in msgs if m["role"] == "assistant" for c in m.get("tool_calls", [])]
        # the whole suite, first and last: one command, nothing copied from the task
        bash = [c["arguments"]["command"] for c in calls if c["name"] == "bash"]
        assert calls[0]["name"] == "bash" and bash[0] == bash[-1] == "python -m unittest -q"
        task = json.loads((dirs[0].parent / row["task"] / "task.json").read_text())
        assert msgs[1]["content"] == task["problem_statement"]
        assert any(c["name"] == "edit_file" for c in calls)
        # every call is answered, in order, by a tool message
        for i, m in enumerate(msgs):
            for c in m.get("tool_calls", []):
                assert msgs[i + 1]["tool_call_id"] == c["id"]
        # the last test run passed
        last_bash = [m for m in msgs if m["role"] == "tool" and m["name"] == "bash"][-1]
        assert "OK" in last_bash["content"] and "[exit code 0]" in last_bash["content"]
        text = render_text(msgs, row["tools"])
        assert "<|tool_call|>edit_file{" in text
        # a one-line edit that applies copies the whole line, indentation included: the line
        # as read_file printed it just before, token for token
        for i, m in enumerate(msgs):
            for c in m.get("tool_calls", []):
                args = c["arguments"]
                old = args.get("old_string", "")
                ok = not msgs[i + 1]["content"].startswith("error:")
                # a call that fails on purpose (a recovery to learn) is kept out of the loss
                assert ok == m.get("train", True)
                if c["name"] == "edit_file" and "\n" not in old and ok:
                    text = (dirs[0].parent / row["task"] / "repo" / args["path"]).read_text()
                    assert old in text.splitlines(), old
                    new = args["new_string"]
                    assert len(new) - len(new.lstrip()) == len(old) - len(old.lstrip())
                    short_edits.append(old)
    assert any(old != old.lstrip() for old in short_edits)


def test_recoveries_are_recorded_and_react_to_tool_errors(tmp_path):
    _, rows = _record(tmp_path, 8, seed=1)
    recoveries = 0
    for row in rows:
        msgs = row["messages"]
        for i, m in enumerate(msgs):
            if m["role"] == "tool" and m["name"] == "edit_file" and m["content"].startswith("error"):
                recoveries += 1
                failed = msgs[i - 1]["tool_calls"][0]["arguments"]
                # the next edit is a different one, copied from the line(s) read again
                later = [c for mm in msgs[i + 1:] for c in mm.get("tool_calls", [])]
                assert later[0]["name"] == "read_file" and later[1]["name"] == "edit_file"
                reread = msgs[i + 2]["content"]
                copied = "\n".join(line.split("\t", 1)[1] for line in reread.splitlines()
                                   if "\t" in line)   # not the "[showing lines ...]" note
                # copied exactly, or from the indentation's last space when the rest is unique
                fixed = later[1]["arguments"]["old_string"]
                assert fixed == copied or (copied.endswith(fixed) and fixed.lstrip() == copied.lstrip()
                                           and fixed[0] == " " and fixed[1] != " ")
                assert later[1]["arguments"]["old_string"] != failed["old_string"]
    assert recoveries >= 1
    searched = sum(any(c["name"] == "grep" for m in r["messages"] for c in m.get("tool_calls", []))
                   for r in rows)
    assert 0 < searched < len(rows)          # both paths, search first and read first
    def second_call(r):
        return [c for m in r["messages"] for c in m.get("tool_calls", [])][1]
    read_first = [r for r in rows if second_call(r)["name"] == "read_file"
                  and "offset" not in second_call(r)["arguments"]
                  and "/" in second_call(r)["arguments"]["path"]]   # not a wrong guess
    assert read_first                        # read first: the whole module, named by the task
    for r in read_first:
        path = second_call(r)["arguments"]["path"]
        pkg, module = path[:-3].split("/")
        assert pkg in r["messages"][1]["content"] and f".test_{module}." in r["messages"][1]["content"]
    guesses = 0
    for r in rows:
        msgs = r["messages"]
        for i, m in enumerate(msgs):
            if m["role"] == "tool" and m["name"] == "read_file" and "does not exist" in m["content"]:
                guesses += 1                 # a wrong first guess, answered by a search
                assert msgs[i + 1]["tool_calls"][0]["name"] == "grep"
    assert guesses >= 1


def test_an_edit_after_a_traceback_into_its_line_copies_that_line_read_alone(tmp_path):
    """Tier 1: the traceback ends on the buggy line; the oracle reads that line alone (its
    number copied from the traceback) and the edit's old_string is that line's code."""
    dirs = [generate_task(s, 1, "heldout").write(tmp_path / "tasks") for s in range(6)]
    out = tmp_path / "sft.jsonl"
    assert record(dirs, out, seed=3, workers=2) == len(dirs)
    for row in (json.loads(line) for line in out.read_text().splitlines()):
        msgs = row["messages"]
        gold = json.loads((tmp_path / "tasks" / row["task"] / "task.json").read_text())["gold"][0]
        tests = msgs[3]["content"]
        assert f'File "{gold["path"]}", line {gold["line"]}, in' in tests
        calls = [(i, c) for i, m in enumerate(msgs) for c in m.get("tool_calls", [])]
        reads = [(i, c) for i, c in calls if c["arguments"].get("limit") == 1]
        i, read = reads[0]
        assert read["arguments"] == {"path": gold["path"], "offset": gold["line"], "limit": 1}
        shown = msgs[i + 1]["content"].splitlines()[0]
        assert shown == f'{gold["line"]:>6}\t{gold["old"]}'
        edit = [c for j, c in calls if j > i and c["name"] == "edit_file"][-1]  # after any recovery
        assert edit["arguments"]["old_string"].lstrip() == gold["old"].lstrip()


def test_recorded_trajectories_replay_to_a_solved_state(tmp_path):
    """Feed the oracle's assistant turns to the real agent loop (replay: model) on fresh
    copies: the tools give the same results and every task ends solved."""
    dirs, rows = _record(tmp_path, 2, seed=3)
    script = tmp_path / "script.jsonl"
    with open(script, "w") as f:
        for row in sorted(rows, key=lambda r: r["task"]):
            for m in row["messages"]:
                if m["role"] == "assistant":
                    turn = {"content": m["content"]}
                    if m.get("tool_calls"):
                        turn["tool_calls"] = [{"name": c["name"], "arguments": c["arguments"]}
                                              for c in m["tool_calls"]]
                    f.write(json.dumps(turn) + "\n")
    summary = evaluate(f"replay:{script}", tmp_path / "tasks", tmp_path / "eval", workers=1,
                       max_steps=20, progress=False)
    assert summary["total"] == len(dirs)
    assert summary["solved"] == len(dirs), summary


@pytest.mark.slow
def test_oracle_solves_many_seeds_of_every_tier(tmp_path):
    dirs = [generate_task(s, tier, "train").write(tmp_path / "tasks")
            for tier in (1, 2, 3) for s in range(500, 700)]
    # strict: any task the oracle cannot solve (verified by the tests) raises
    assert record(dirs, tmp_path / "sft.jsonl", seed=11, workers=2, verify=True) == len(dirs)


def test_test_lines_keep_the_first_traceback_and_still_solve(tmp_path):
    """test_lines=15: every test run is `... 2>&1 | head -n 15` -- at most 15 lines of output,
    the traceback into the buggy line still among them (errors print before failures), fewer
    characters than the whole output, and the task still ends solved (verify=True)."""
    from groundup.tasks.oracle import test_command
    dirs = [generate_task(s, 1, "heldout").write(tmp_path / "tasks") for s in range(6)]
    whole, short = tmp_path / "whole.jsonl", tmp_path / "short.jsonl"
    assert record(dirs, whole, seed=3, workers=2) == len(dirs)
    assert record(dirs, short, seed=3, workers=2, verify=True, test_lines=15) == len(dirs)
    pairs = zip(*(sorted((json.loads(x) for x in f.read_text().splitlines()), key=lambda r: r["task"])
                  for f in (whole, short)))
    for full, row in pairs:
        msgs = row["messages"]
        gold = json.loads((tmp_path / "tasks" / row["task"] / "task.json").read_text())["gold"][0]
        runs = [(m, msgs[i + 1]["content"]) for i, m in enumerate(msgs)
                for c in m.get("tool_calls", []) if c["name"] == "bash"]
        assert [m["tool_calls"][0]["arguments"]["command"] for m, _ in runs] == \
            [test_command(15)] * 2 == ["python -m unittest -q 2>&1 | head -n 15"] * 2
        first, last = runs[0][1], runs[-1][1]
        # the whole run's first 15 lines, then head's exit code (the whole run's is 1)
        assert first.splitlines() == full["messages"][3]["content"].splitlines()[:15] + ["[exit code 0]"]
        assert len(first) < len(full["messages"][3]["content"])
        assert f'File "{gold["path"]}", line {gold["line"]}, in' in first
        assert "OK" in last
        # the same path through the task, call for call, apart from the command
        strip = lambda ms: [(c["name"], c["arguments"]) for m in ms for c in m.get("tool_calls", [])
                            if c["name"] != "bash"]
        assert strip(msgs) == strip(full["messages"])
    assert test_command() == "python -m unittest -q"
