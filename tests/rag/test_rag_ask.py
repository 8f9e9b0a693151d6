"""`groundup ask`: retrieved chunks as numbered sources, the answer streamed, citations listed."""

import json
import subprocess
import sys

from groundup.rag.ask import build_messages, citations
from groundup.rag.index import update
from groundup.rag.search import Searcher


def _repo(tmp_path):
    root = tmp_path / "ws"
    root.mkdir()
    (root / "accounts.py").write_text('def delete_account(member_id):\n    """Erase a member."""\n'
                                      '    db.purge(member_id)\n')
    (root / "billing.py").write_text('def charge_card(card, cents):\n    """Bill a card."""\n'
                                     '    return gateway.charge(card, cents)\n')
    update(root, root / ".groundup" / "index.db", None)       # BM25-only: no model needed
    return root


def test_prompt_numbers_the_sources(tmp_path):
    root = _repo(tmp_path)
    results = Searcher(root / ".groundup" / "index.db").search("erase member account", k=2)
    system, user = build_messages("How is a member erased?", results)
    assert "[1] or [2, 3]" in system["content"]
    assert user["content"].startswith("Sources:\n\n[1] accounts.py:1-3\n```\ndef delete_account")
    assert user["content"].endswith("Question: How is a member erased?")


def test_citations_parsed():
    assert citations("It is [2], see also [1, 2] and [7][3].", 3) == ([2, 1, 3], [7])
    assert citations("no sources here", 3) == ([], [])


def test_ask_streams_and_lists_cited_sources(tmp_path):
    root = _repo(tmp_path)
    script = tmp_path / "answer.jsonl"
    script.write_text(json.dumps({"content": "`delete_account` purges the member [1]. "
                                             "Billing is elsewhere [9]."}) + "\n")
    cmd = [sys.executable, "-m", "groundup", "ask", "how is a member account erased?",
           "--model", f"replay:{script}"]
    p = subprocess.run(cmd, cwd=root, capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    assert p.stdout.startswith("`delete_account` purges the member [1].")
    assert "Sources:\n  [1] accounts.py:1-3" in p.stdout
    assert "cites sources that were not given: [9]" in p.stderr
    j = subprocess.run(cmd + ["--json"], cwd=root, capture_output=True, text=True)
    out = json.loads(j.stdout)
    assert out["cited"] == [{"n": 1, "source": "accounts.py:1-3"}]
    assert out["chunks"][0]["path"] == "accounts.py" and out["unknown_citations"] == [9]
    missing = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True)
    assert missing.returncode == 2 and "groundup index" in missing.stderr
