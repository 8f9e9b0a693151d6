"""MCP's protocol revisions, and the few fields that differ between them.

Two eras of MCP are in use, and groundup speaks both:

    legacy (2025-03-26, 2025-06-18, 2025-11-25)     modern (2026-07-28)
    initialize → result → notifications/initialized  no handshake: every request carries
    the session remembers version + capabilities       _meta["io.modelcontextprotocol/
    HTTP: Mcp-Session-Id header, GET stream            protocolVersion"] and ".../clientCapabilities"
    results are bare objects                           results carry "resultType": "complete"
    resource not found: -32002                         server/discover says what a server speaks
                                                       resource not found: -32602

Source: the specification text and schema.ts of each revision in the
modelcontextprotocol/modelcontextprotocol repository (docs/specification/<rev>/,
schema/<rev>/schema.ts), read for this module; field names below are copied from there.

Design choices:
- Versions are an enumerated set, compared by membership, never by string order.
- The 2025 revisions differ from 2025-11-25 only in fields we do not use (tasks, icons,
  elicitation modes) or in things the transport handles (batches in 2025-03-26, the
  MCP-Protocol-Version header from 2025-06-18 on), so one code path serves all three.
"""

from __future__ import annotations

from typing import Any

MODERN_VERSIONS = ("2026-07-28",)
LEGACY_VERSIONS = ("2025-11-25", "2025-06-18", "2025-03-26")     # newest first
SUPPORTED_VERSIONS = MODERN_VERSIONS + LEGACY_VERSIONS
LATEST_MODERN = MODERN_VERSIONS[0]
LATEST_LEGACY = LEGACY_VERSIONS[0]

# the reserved _meta keys of 2026-07-28 (basic/index.mdx, "Per-request protocol fields")
META_VERSION = "io.modelcontextprotocol/protocolVersion"
META_CLIENT_INFO = "io.modelcontextprotocol/clientInfo"
META_CLIENT_CAPS = "io.modelcontextprotocol/clientCapabilities"
META_LOG_LEVEL = "io.modelcontextprotocol/logLevel"
META_SERVER_INFO = "io.modelcontextprotocol/serverInfo"

IMPLEMENTATION = {"name": "groundup", "version": "0.1.0"}

# results that 2026-07-28 says carry caching hints (server/utilities/caching.mdx)
CACHEABLE = frozenset({"server/discover", "tools/list", "prompts/list", "resources/list",
                       "resources/templates/list", "resources/read"})


def is_modern(version: str | None) -> bool:
    return version in MODERN_VERSIONS


def request_meta(version: str, capabilities: dict[str, Any] | None = None) -> dict[str, Any]:
    """The _meta a modern request must carry (protocol version and capabilities required,
    client identity recommended)."""
    return {META_VERSION: version, META_CLIENT_INFO: dict(IMPLEMENTATION),
            META_CLIENT_CAPS: capabilities or {}}


def with_meta(params: dict[str, Any] | None, meta: dict[str, Any]) -> dict[str, Any]:
    """params with `meta` merged into params["_meta"] (a copy; the caller's dict is kept)."""
    out = dict(params or {})
    out["_meta"] = {**(out.get("_meta") or {}), **meta}
    return out


def result_type(result: dict[str, Any]) -> str:
    """A result's resultType; older servers omit it, which means "complete" (schema.ts)."""
    value = result.get("resultType")
    return value if isinstance(value, str) else "complete"
