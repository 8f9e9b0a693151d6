"""Compaction: a model with a small context still finishes; the session keeps everything."""

import json

from agent_testlib import call, make_repo, script, turn
from groundup.agent.compact import compact
from groundup.agent.loop import Agent
from groundup.providers import load_model
from groundup.providers.base import ContextOverflow


class SmallContext:
    """A replayed model behind a small window: like every provider, it refuses a prompt
    that does not fit with a ContextOverflow."""
    compact_prompt = False
    base_url = None

    def __init__(self, model_spec: str, limit: int):
        self.inner = load_model(model_spec)
        self.name, self.limit, self.views = "small-context", limit, []

    def check(self) -> None:
        pass

    def stream(self, messages, tools, *, max_tokens=None):
        size = sum(len(str(m.get("content") or "")) + len(json.dumps(m.get("tool_calls") or []))
                   for m in messages)
        if size > self.limit:
            raise ContextOverflow(f"context overflow: the prompt is {size} characters, the "
                                f"window {self.limit}")
        self.views.append(messages)
        yield from self.inner.stream(messages, tools, max_tokens=max_tokens)


def valid(view):
    """Every tool result follows the assistant turn that made its call."""
    open_calls = set()
    for m in view:
        if m["role"] == "assistant":
            open_calls = {c["id"] for c in m.get("tool_calls") or []}
        elif m["role"] == "tool":
            if m["tool_call_id"] not in open_calls:
                return False
        else:
            open_calls = set()
    return True


def test_small_context_model_finishes_and_session_keeps_everything(tmp_path):
    big = "".join(f"line {i} of a long module\n" for i in range(120))
    repo = make_repo(tmp_path / "repo", {"big.py": big, "small.py": "x = 1\n"})
    model = SmallContext(script(tmp_path / "s.jsonl", [
        turn(call("read_file", path="big.py")),
        turn(call("grep", pattern="line 7")),
        turn(call("read_file", path="big.py", offset=100, limit=5)),
        turn(call("read_file", path="small.py")),
        {"content": "done"}]), limit=5000)
    events = []
    agent = Agent(model, repo, session_dir=repo / ".groundup" / "sessions",
                  on_event=events.append, compact_prompt=True)
    res = agent.run("look around")
    assert res.stop_reason == "end_turn" and res.result == "done"
    assert any(e["type"] == "compact" for e in events)
    assert all(valid(v) for v in model.views)
    levels = [e["level"] for e in events if e["type"] == "compact"]
    assert levels == sorted(levels) and levels[0] == 1       # it only ever gets harsher
    last = model.views[-1]
    assert len(last) < len(res.messages) - 1 or any("elided" in m["content"] for m in last)
    assert not any("line 119 of a long module" in m["content"] for m in last)
    # the full history is on disk: the first read is there, complete
    saved = [json.loads(line) for line in res.session_path.read_text().splitlines()]
    assert saved == res.messages
    assert "line 119 of a long module" in saved[3]["content"]


def test_compaction_levels_keep_the_task_and_valid_pairs():
    msgs = [{"role": "system", "content": "s"}, {"role": "user", "content": "task"}]
    for i in range(10):
        msgs.append({"role": "assistant", "content": "",
                     "tool_calls": [{"id": f"c{i}a", "name": "bash", "arguments": {}},
                                    {"id": f"c{i}b", "name": "bash", "arguments": {}}]})
        msgs.append({"role": "tool", "tool_call_id": f"c{i}a", "name": "bash", "content": "out\n" * 9})
        msgs.append({"role": "tool", "tool_call_id": f"c{i}b", "name": "bash", "content": "out"})
    assert compact(msgs, 0) is msgs
    one = compact(msgs, 1)
    assert len(one) == len(msgs)
    assert sum("elided" in m["content"] for m in one) == 18
    assert one[-1] == msgs[-1] and one[-2] == msgs[-2]
    assert msgs[3]["content"] == "out\n" * 9                 # the original is untouched
    previous = len(one)
    for level in range(2, 7):
        view = compact(msgs, level)
        assert view[:2] == msgs[:2] and valid(view) and view[-1] == msgs[-1]
        assert len(view) <= previous
        previous = len(view)
    assert [m["role"] for m in compact(msgs, 6)] == ["system", "user", "assistant", "tool", "tool"]
