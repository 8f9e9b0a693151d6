"""What an unsolved run did, read from its transcript: each failure word on a real-shaped run."""

from groundup.tasks.failures import classify

GOLD = [{"path": "pkg/shelf.py", "old": "        self.deck.append(timber)",
         "new": "        self.timbers.append(timber)", "line": 9}]


def run(*edits, parse_error=False):
    """A transcript: the edit calls given as (old, new, result), then an answer."""
    msgs = [{"role": "user", "content": "fix it"}]
    for i, (old, new, result) in enumerate(edits):
        msgs += [{"role": "assistant", "content": "", "tool_calls": [
                     {"id": f"c{i}", "name": "edit_file",
                      "arguments": {"path": "pkg/shelf.py", "old_string": old, "new_string": new}}]},
                 {"role": "tool", "tool_call_id": f"c{i}", "name": "edit_file", "content": result}]
    if parse_error:
        msgs += [{"role": "assistant", "content": "", "tool_calls": [
                     {"id": "p", "name": "edit_file", "arguments": {}}]},
                 {"role": "tool", "tool_call_id": "p", "content":
                  "error: your tool call could not be parsed: unterminated string. Call a tool..."}]
    return msgs


LINE = "        self.deck.append(timber)"
SAME = "error: old_string and new_string are the same; nothing to change"
MISS = "error: old_string was not found in pkg/shelf.py; it must match exactly"


def test_each_failure():
    assert classify(GOLD, run((LINE, LINE, SAME)), "end_turn") == "unchanged"
    assert classify(GOLD, run((LINE, "        self.deck.extend(timber)", "edited pkg/shelf.py\n...")),
                    "end_turn") == "wrong_name"     # names only: `append` -> `extend`
    assert classify(GOLD, run((LINE, "        self.deck.append(timber + 1)", "edited pkg/shelf.py")),
                    "end_turn") == "wrong_fix"
    assert classify(GOLD, run(("        return True", "        return False", "edited pkg/shelf.py")),
                    "end_turn") == "wrong_line"
    assert classify(GOLD, run(("self.dek.append", "self.timbers.append", MISS)), "end_turn") == "no_match"
    assert classify(GOLD, run(parse_error=True), "end_turn") == "broken_call"
    assert classify(GOLD, run(), "max_steps") == "step_limit"
    assert classify(GOLD, run(), "end_turn") == "no_edit"
    assert classify(GOLD, [], "crash") == "crash"


def test_the_last_applied_edit_decides():
    msgs = run((LINE, LINE, SAME), (LINE, "        self.spoon.append(timber)", "edited pkg/shelf.py"))
    assert classify(GOLD, msgs, "max_steps") == "wrong_name"
