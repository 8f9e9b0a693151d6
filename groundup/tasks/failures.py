"""What an unsolved run did: one word per failure, read from the transcript and the gold edit.

    classify(gold, messages, stop_reason) -> "unchanged" | "wrong_name" | ...

The report card counts these per bug kind (solved / total and how the rest failed), the
breakdown earlier speedrun notes made by hand from the transcripts:

    unchanged    an edit wrote the line back as it was ("old_string and new_string are the
                 same"): the model found the line and did not know the fix
    wrong_name   an edit applied on the buggy line, differing from the fix only in names
    wrong_fix    an edit applied on the buggy line, some other change
    wrong_line   an edit applied, elsewhere
    no_match     an edit whose old_string was not in the file (a copy that drifted)
    broken_call  a tool call that did not parse
    step_limit   the step limit (or the repeat stop) came first, without any of the above
    no_edit      the model answered without trying an edit
    crash        the run raised

Design choice: when a run did several things, the last applied edit decides (it is what the
tests judged); without one, the most telling attempt does, in the order listed above.
"""

from __future__ import annotations

import re
from typing import Any, Sequence

FAILURES = ("unchanged", "wrong_name", "wrong_fix", "wrong_line", "no_match", "broken_call",
            "step_limit", "no_edit", "crash")
_TOKEN = re.compile(r"[A-Za-z_]\w*|\d+|\S")


def _edits(messages: Sequence[dict[str, Any]]) -> list[tuple[dict[str, Any], str]]:
    """(arguments, result) of every edit_file call, in order."""
    results = {m.get("tool_call_id"): str(m.get("content", "")) for m in messages
               if m.get("role") == "tool"}
    out = []
    for m in messages:
        for c in m.get("tool_calls") or [] if m.get("role") == "assistant" else []:
            if c.get("name") == "edit_file" and isinstance(c.get("arguments"), dict):
                out.append((c["arguments"], results.get(c.get("id"), "")))
    return out


def _only_names_differ(a: str, b: str) -> bool:
    ta, tb = _TOKEN.findall(a), _TOKEN.findall(b)
    return len(ta) == len(tb) and all(x == y or (x[0].isalpha() or x[0] == "_") and
                                      (y[0].isalpha() or y[0] == "_") for x, y in zip(ta, tb))


def classify(gold: Sequence[dict[str, Any]], messages: Sequence[dict[str, Any]],
             stop_reason: str | None) -> str:
    """One of FAILURES for a run that did not solve its task."""
    if stop_reason == "crash":
        return "crash"
    edits = _edits(messages)
    applied = [a for a, r in edits if r.startswith("edited ")]
    if applied:
        last = applied[-1]
        old, new = str(last.get("old_string", "")), str(last.get("new_string", ""))
        for g in gold:
            buggy = g["old"].splitlines()[-1].strip()
            if buggy and buggy in old:
                fixed = g["new"].splitlines()[-1].strip()
                got = next((ln.strip() for ln in new.splitlines() if ln.strip()), "")
                return "wrong_name" if _only_names_differ(got, fixed) else "wrong_fix"
        return "wrong_line"
    if any("are the same" in r for _, r in edits):
        return "unchanged"
    if any("was not found" in r for _, r in edits):
        return "no_match"
    if any(m.get("role") == "tool" and "could not be parsed" in str(m.get("content", ""))
           for m in messages) or stop_reason == "format_errors":
        return "broken_call"
    if stop_reason in ("max_steps", "repeats", "max_seconds", "max_tokens"):
        return "step_limit"
    return "no_edit"
