"""MCP tools/call round trips per second over stdio, against the official SDK (the anchor).

    client ratio: our client → SDK server   vs   SDK client → SDK server
    server ratio: SDK client → our server   vs   SDK client → SDK server

Each side calls a trivial `echo` tool (bench/mcp_echo_server.py) CALLS times, one call after
the other, on one connection that is already open (startup is not timed). Rounds alternate
the sides and the best round of each counts, so a noisy neighbour hits all sides alike.
Both peers speak 2026-07-28 (the SDK client in `auto` mode negotiates it with both servers).

    .venv/bin/python bench/mcp.py [--calls 300] [--rounds 5]
"""

import argparse
import sys
import time
from pathlib import Path

# this file is bench/mcp.py: drop bench/ from the path, or `import mcp` would import itself
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).parent.resolve()]

import anyio

from groundup.mcp.client import Client
from groundup.mcp.stdio import StdioTransport

SERVER = str(Path(__file__).parent / "mcp_echo_server.py")


def ours_against(which: str, calls: int) -> float:
    c = Client("bench", StdioTransport("bench", sys.executable, [SERVER, which])).connect()
    try:
        c.call_tool("echo", {"text": "warm"})
        t = time.perf_counter()
        for i in range(calls):
            res = c.call_tool("echo", {"text": f"hi {i}"})
            assert res["content"][0]["text"] == f"hi {i}"
        return calls / (time.perf_counter() - t)
    finally:
        c.close()


def sdk_against(which: str, calls: int) -> float:
    from mcp import Client as SdkClient
    from mcp.client.stdio import StdioServerParameters

    async def main() -> float:
        params = StdioServerParameters(command=sys.executable, args=[SERVER, which])
        async with SdkClient(params) as c:
            await c.call_tool("echo", {"text": "warm"})
            t = time.perf_counter()
            for i in range(calls):
                res = await c.call_tool("echo", {"text": f"hi {i}"})
                assert res.content[0].text == f"hi {i}"
            return calls / (time.perf_counter() - t)
    return anyio.run(main)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--calls", type=int, default=300)
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    try:
        import mcp  # noqa: F401  (only: is the SDK there?)
    except ImportError:
        print("the official MCP SDK is not installed (pip install mcp): no anchor to compare with")
        return
    sides = {"our client -> SDK server": lambda: ours_against("sdk", args.calls),
             "SDK client -> SDK server": lambda: sdk_against("sdk", args.calls),
             "SDK client -> our server": lambda: sdk_against("ours", args.calls)}
    best = {name: 0.0 for name in sides}
    for r in range(args.rounds):
        for name, run in sides.items():
            best[name] = max(best[name], run())
        print(f"round {r + 1}: " + ", ".join(f"{n} {v:.0f}/s" for n, v in best.items()), flush=True)
    anchor = best["SDK client -> SDK server"]
    print(f"\ntools/call round trips per second over stdio, best of {args.rounds} rounds of "
          f"{args.calls} calls:")
    for name, rate in best.items():
        print(f"  {name:<26} {rate:8.0f}/s")
    print(f"client ratio (ours / SDK, same SDK server): {best['our client -> SDK server'] / anchor:.2f}x")
    print(f"server ratio (ours / SDK, same SDK client): {best['SDK client -> our server'] / anchor:.2f}x")


if __name__ == "__main__":
    main()
