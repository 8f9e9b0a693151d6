"""Name drills: each is a real wrong-name bug in a generated function, fixed by its last turn."""

import re

from groundup.agent.diagnostics import check
from groundup.chat.format import render_segments
from groundup.tasks.drills import name_drills


def test_each_drill_ends_in_the_edit_that_fixes_a_real_name_bug():
    drills = name_drills(40, seed=3)
    assert len(drills) == 40 and name_drills(40, seed=3) == drills        # deterministic
    with_hint = 0
    for msgs in drills:
        module = "\n".join(line.split("\t", 1)[1] for line in msgs[2]["content"].splitlines())
        edit = msgs[-1]["tool_calls"][0]
        assert edit["name"] == "edit_file" and msgs[-1].get("train", True)
        assert all(m.get("train") is False for m in msgs if m["role"] == "assistant" and m is not msgs[-1])
        old, new = edit["arguments"]["old_string"], edit["arguments"]["new_string"]
        assert module.count(old) == 1 and old != new
        a, b = re.findall(r"\w+", old), re.findall(r"\w+", new)
        assert len(a) == len(b) and sum(x != y for x, y in zip(a, b)) == 1  # one name differs
        fixed = module.replace(old, new)
        assert check(fixed) == []                                          # the template is clean
        assert msgs[4]["content"].startswith(edit["arguments"]["path"])    # its diagnostics
        with_hint += any(y in d.message for d in check(module) for x, y in zip(a, b) if x != y)
    assert with_hint >= 5      # some drills show the right name in the diagnostics, most do not


def test_only_the_edit_carries_the_loss():
    msgs = name_drills(1, seed=0)[0]
    trained = [text for text, special, m in render_segments(msgs, None, False) if m and not special]
    assert any('"new_string"' in t for t in trained)
    assert not any("Let me read the module." in t for t in trained)
