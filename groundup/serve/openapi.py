"""The server's OpenAPI 3.0 description (GET /openapi.json): the part of OpenAI's API it speaks.

Written by hand, the subset we accept: a client generator or a fuzzer (tests/serve: a
property-based fuzz draws request bodies from these schemas and checks that no answer is a
5xx) reads it. Fields OpenAI has and we refuse (n > 1, logprobs, penalties) are described
with the values we accept.
"""

from __future__ import annotations

from typing import Any

_TEXT_PARTS = {"oneOf": [{"type": "string"}, {"type": "array", "items": {
    "type": "object", "required": ["type", "text"],
    "properties": {"type": {"type": "string", "enum": ["text"]}, "text": {"type": "string"}}}}]}

_MESSAGE = {
    "type": "object", "required": ["role"],
    "properties": {
        "role": {"type": "string", "enum": ["system", "developer", "user", "assistant", "tool"]},
        "content": {**_TEXT_PARTS, "nullable": True},
        "tool_call_id": {"type": "string"},
        "tool_calls": {"type": "array", "items": {
            "type": "object", "required": ["id", "type", "function"],
            "properties": {"id": {"type": "string"}, "type": {"type": "string", "enum": ["function"]},
                           "function": {"type": "object", "required": ["name", "arguments"],
                                        "properties": {"name": {"type": "string"},
                                                       "arguments": {"type": "string"}}}}}},
    },
}

_TOOL = {
    "type": "object", "required": ["type", "function"],
    "properties": {
        "type": {"type": "string", "enum": ["function"]},
        "function": {"type": "object", "required": ["name"], "properties": {
            "name": {"type": "string", "pattern": "^[A-Za-z0-9_-]{1,64}$"},
            "description": {"type": "string"},
            "parameters": {"type": "object"}}},
    },
}

_SAMPLING = {
    "model": {"type": "string"},
    "stream": {"type": "boolean"},
    "stream_options": {"type": "object", "properties": {"include_usage": {"type": "boolean"}}},
    "max_tokens": {"type": "integer", "minimum": 1, "nullable": True},
    "max_completion_tokens": {"type": "integer", "minimum": 1, "nullable": True},
    "temperature": {"type": "number", "minimum": 0, "maximum": 2, "nullable": True},
    "top_p": {"type": "number", "minimum": 0, "maximum": 1, "nullable": True},
    "seed": {"type": "integer", "nullable": True},
    "stop": {"oneOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}, "maxItems": 4}],
             "nullable": True},
    "n": {"type": "integer", "enum": [1]},
}

_ERROR = {"description": "an OpenAI-shaped error", "content": {"application/json": {"schema": {
    "type": "object", "required": ["error"], "properties": {"error": {
        "type": "object", "required": ["message", "type"],
        "properties": {"message": {"type": "string"}, "type": {"type": "string"},
                       "param": {"type": "string", "nullable": True},
                       "code": {"type": "string", "nullable": True}}}}}}}}


def _post(summary: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"post": {"summary": summary,
                     "requestBody": {"required": True, "content": {"application/json": {"schema": schema}}},
                     "responses": {"200": {"description": "the completion (JSON), or an SSE stream with stream: true"},
                                   "400": _ERROR, "401": _ERROR, "404": _ERROR, "413": _ERROR,
                                   "415": _ERROR, "429": _ERROR, "503": _ERROR}}}


def _get(summary: str) -> dict[str, Any]:
    return {"get": {"summary": summary, "responses": {"200": {"description": "OK"}}}}


def openapi(model: str) -> dict[str, Any]:
    chat = {"type": "object", "required": ["model", "messages"], "properties": {
        **_SAMPLING, "model": {"type": "string", "enum": [model]},
        "messages": {"type": "array", "minItems": 1, "items": _MESSAGE},
        "tools": {"type": "array", "items": _TOOL},
        "tool_choice": {"oneOf": [{"type": "string", "enum": ["none", "auto", "required"]}, {
            "type": "object", "required": ["type", "function"],
            "properties": {"type": {"type": "string", "enum": ["function"]},
                           "function": {"type": "object", "required": ["name"],
                                        "properties": {"name": {"type": "string"}}}}}]}}}
    completion = {"type": "object", "required": ["model", "prompt"], "properties": {
        **_SAMPLING, "model": {"type": "string", "enum": [model]},
        "prompt": {"oneOf": [{"type": "string", "minLength": 1},
                             {"type": "array", "items": {"type": "integer", "minimum": 0}, "minItems": 1}]}}}
    return {
        "openapi": "3.0.3",
        "info": {"title": "groundup serve", "version": "1",
                 "description": "An OpenAI-compatible server on groundup's engine."},
        "paths": {
            "/v1/chat/completions": _post("Chat completion (tools, streaming)", chat),
            "/v1/completions": _post("Text completion", completion),
            "/v1/models": _get("The served model"),
            "/health": _get("Liveness; 503 while draining"),
            "/metrics": _get("Prometheus metrics"),
        },
    }
