"""`groundup serve`: an OpenAI-compatible HTTP server on groundup's engine, with a web chat page.

    app.py       the ASGI app: routes, auth, limits, SSE streaming, disconnects, draining
    protocol.py  the OpenAI wire format: request checks and conversion, responses and chunks
    backend.py   the engine behind a continuous-batching Scheduler, or a replay script
    metrics.py   Prometheus text format: requests, queue, slots, KV cache, TTFT and ITL
    openapi.py   the OpenAPI description of what the server accepts
    chat.html    the web chat page served at /
    cli.py       `groundup serve`: wiring, uvicorn, SIGTERM -> graceful drain

This layer sits above the engine, chat and providers layers, and below nothing the agent needs.
"""
