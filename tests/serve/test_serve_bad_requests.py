"""Bad requests get the right 4xx and a message that says what to fix -- never a 500, never a
dead server: a table of cases, then a property-based fuzz that draws request bodies from the
server's own OpenAPI description (and arbitrary JSON) and checks that nothing answers 5xx."""

import json

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from serve_testlib import Server, our_model  # noqa: E402

KEY = "s3cret"
AUTH = {"Authorization": f"Bearer {KEY}"}
GOOD = {"model": "tiny", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4, "temperature": 0}
TOOL = {"type": "function", "function": {"name": "run", "parameters": {"type": "object", "properties": {
    "command": {"type": "string"}}}}}


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    d = our_model(tmp_path_factory.mktemp("tiny"))
    with Server("--model", str(d), "--name", "tiny", "--max-len", "64", "--api-key", KEY, "--max-batch", "2") as s:
        yield s


def body(**changes):
    b = {**GOOD, **changes}
    return {k: v for k, v in b.items() if v is not ...}


# (what, method, path, headers, raw body or JSON, status, words the message must contain, param)
CASES = [
    ("malformed JSON", "POST", "/v1/chat/completions", AUTH, b'{"model": "tiny",', 400, "not valid JSON", None),
    ("empty body", "POST", "/v1/chat/completions", AUTH, b"", 400, "empty", None),
    ("JSON that is not an object", "POST", "/v1/chat/completions", AUTH, [1, 2], 400, "JSON object", None),
    ("wrong content type", "POST", "/v1/chat/completions", {**AUTH, "Content-Type": "text/plain"},
     b'{"model": "tiny"}', 415, "application/json", None),
    ("a 10 MB body", "POST", "/v1/chat/completions", AUTH,
     json.dumps(body(messages=[{"role": "user", "content": "x" * (10 << 20)}])).encode(), 413, "at most", None),
    ("no API key", "POST", "/v1/chat/completions", {}, GOOD, 401, "Authorization: Bearer", None),
    ("wrong API key", "POST", "/v1/chat/completions", {"Authorization": "Bearer nope"}, GOOD, 401, "API key", None),
    ("missing model", "POST", "/v1/chat/completions", AUTH, body(model=...), 400, "'model' is required", "model"),
    ("unknown model", "POST", "/v1/chat/completions", AUTH, body(model="gpt-9"), 404, "serves 'tiny'", "model"),
    ("missing messages", "POST", "/v1/chat/completions", AUTH, body(messages=...), 400, "'messages'", "messages"),
    ("empty messages", "POST", "/v1/chat/completions", AUTH, body(messages=[]), 400, "non-empty", "messages"),
    ("a bad role", "POST", "/v1/chat/completions", AUTH, body(messages=[{"role": "robot", "content": "x"}]),
     400, "role must be one of", "messages[0].role"),
    ("an image part", "POST", "/v1/chat/completions", AUTH,
     body(messages=[{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}]),
     400, "only text parts", "messages[0].content"),
    ("a tool result without its call id", "POST", "/v1/chat/completions", AUTH,
     body(messages=[{"role": "user", "content": "x"}, {"role": "tool", "content": "y"}]), 400, "tool_call_id",
     "messages[1].tool_call_id"),
    ("tool-call arguments that are not JSON", "POST", "/v1/chat/completions", AUTH,
     body(messages=[{"role": "assistant", "content": None, "tool_calls": [
         {"id": "c1", "type": "function", "function": {"name": "run", "arguments": "{oops"}}]}]),
     400, "not valid JSON", "messages[0].tool_calls[0].function.arguments"),
    ("a prompt longer than the context", "POST", "/v1/chat/completions", AUTH,
     body(messages=[{"role": "user", "content": "hello " * 200}]), 400, "context is 64 tokens", "messages"),
    ("max_tokens over the limit", "POST", "/v1/chat/completions", AUTH, body(max_tokens=1000), 400,
     "ask for at most", "max_tokens"),
    ("a negative max_tokens", "POST", "/v1/chat/completions", AUTH, body(max_tokens=-5), 400, "at least 1",
     "max_tokens"),
    ("max_tokens that is not an integer", "POST", "/v1/chat/completions", AUTH, body(max_tokens="ten"), 400,
     "must be an integer", "max_tokens"),
    ("temperature out of range", "POST", "/v1/chat/completions", AUTH, body(temperature=3.5), 400,
     "between 0 and 2", "temperature"),
    ("top_p out of range", "POST", "/v1/chat/completions", AUTH, body(top_p=1.5), 400, "between 0 and 1", "top_p"),
    ("n > 1", "POST", "/v1/chat/completions", AUTH, body(n=3), 400, "'n' must be 1", "n"),
    ("too many stop strings", "POST", "/v1/chat/completions", AUTH, body(stop=list("abcde")), 400, "at most 4",
     "stop"),
    ("stream_options without stream", "POST", "/v1/chat/completions", AUTH,
     body(stream_options={"include_usage": True}), 400, "only allowed when 'stream' is true", "stream_options"),
    ("a tool with an invalid schema", "POST", "/v1/chat/completions", AUTH,
     body(tools=[{"type": "function", "function": {"name": "run", "parameters": {"type": "objekt"}}}]),
     400, "not a JSON schema type", "tools[0].function.parameters"),
    ("a tool whose properties are not schemas", "POST", "/v1/chat/completions", AUTH,
     body(tools=[{"type": "function", "function": {"name": "run", "parameters": {
         "type": "object", "properties": {"command": "string"}}}}]), 400, "invalid tool schema",
     "tools[0].function.parameters"),
    ("a tool with a bad name", "POST", "/v1/chat/completions", AUTH,
     body(tools=[{"type": "function", "function": {"name": "run it!"}}]), 400, "1-64 letters", "tools[0].function.name"),
    ("tool_choice naming a missing tool", "POST", "/v1/chat/completions", AUTH,
     body(tools=[TOOL], tool_choice={"type": "function", "function": {"name": "fly"}}), 400, "not in 'tools'",
     "tool_choice"),
    ("a completion without a prompt", "POST", "/v1/completions", AUTH, {"model": "tiny"}, 400, "'prompt'", "prompt"),
    ("a completion token id outside the vocabulary", "POST", "/v1/completions", AUTH,
     {"model": "tiny", "prompt": [1, 99999]}, 400, "outside the vocabulary", "prompt"),
    ("GET on a POST endpoint", "GET", "/v1/chat/completions", AUTH, None, 405, "answers POST", None),
    ("an unknown path", "GET", "/v2/whatever", AUTH, None, 404, "no such endpoint", None),
]


@pytest.fixture(scope="module")
def client(server):
    with httpx.Client(base_url=server.url, timeout=60) as c:
        yield c


def send(client, method, path, headers, payload):
    if payload is None:
        return client.request(method, path, headers=headers)
    if isinstance(payload, bytes):
        return client.request(method, path, headers={"Content-Type": "application/json", **headers}, content=payload)
    return client.request(method, path, headers=headers, json=payload)


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_bad_request(client, case):
    what, method, path, headers, payload, status, words, param = case
    r = send(client, method, path, headers, payload)
    assert r.status_code == status, r.text
    err = r.json()["error"]
    assert set(err) == {"message", "type", "param", "code"}
    assert words in err["message"], err["message"]
    assert err["param"] == param
    if status == 401:
        assert r.headers["www-authenticate"] == "Bearer"


def test_after_all_that_the_server_still_answers_and_counted_no_500(server, client):
    for case in CASES[:5]:
        send(client, *case[1:5])
    r = client.post("/v1/chat/completions", headers=AUTH, json=GOOD)
    assert r.status_code == 200 and r.json()["choices"][0]["finish_reason"] in ("stop", "length")
    m = server.metrics()
    assert m['groundup_requests_total{endpoint="/v1/chat/completions",status="400"}'] >= 5
    assert not [k for k in m if k.startswith("groundup_requests_total") and 'status="5' in k]
    assert client.get("/health").json()["status"] == "ok"


# -------------------------------------------------------------- property-based fuzz

json_values = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=20),
                           lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner,
                                                                                       max_size=4), max_leaves=12)


def from_schema(schema: dict) -> st.SearchStrategy:
    """Values that follow one of the OpenAPI schemas (the subset openapi.py uses): optional
    properties drawn at random, nullable ones sometimes null. (hypothesis-jsonschema would do
    this, but it does not run on this hypothesis release.)"""
    if "oneOf" in schema:
        s = st.one_of([from_schema(x) for x in schema["oneOf"]])
    elif "enum" in schema:
        s = st.sampled_from(schema["enum"])
    else:
        t = schema.get("type")
        if t == "object":
            props = schema.get("properties", {})
            required = set(schema.get("required", []))
            s = st.fixed_dictionaries({k: from_schema(v) for k, v in props.items() if k in required},
                                      optional={k: from_schema(v) for k, v in props.items() if k not in required})
            if not props:
                s = st.dictionaries(st.text(max_size=8), json_values, max_size=3)
        elif t == "array":
            s = st.lists(from_schema(schema.get("items", {})), min_size=schema.get("minItems", 0),
                         max_size=schema.get("maxItems", 3))
        elif t == "string":
            s = st.text(min_size=schema.get("minLength", 0), max_size=30)
        elif t == "integer":
            s = st.integers(min_value=schema.get("minimum"), max_value=schema.get("maximum"))
        elif t == "number":
            s = st.floats(min_value=schema.get("minimum"), max_value=schema.get("maximum"), allow_nan=False,
                          allow_infinity=False)
        elif t == "boolean":
            s = st.booleans()
        else:
            s = json_values
    return s | st.none() if schema.get("nullable") else s


def _fuzz(server, schema_name):
    spec = httpx.get(server.url + "/openapi.json").json()
    path = "/v1/chat/completions" if schema_name == "chat" else "/v1/completions"
    schema = spec["paths"][path]["post"]["requestBody"]["content"]["application/json"]["schema"]
    # bodies that follow the schema, the same with one field replaced by any JSON, and any JSON at all
    mutated = st.tuples(from_schema(schema), st.sampled_from(sorted(schema["properties"])), json_values).map(
        lambda t: {**t[0], t[1]: t[2]})
    return path, st.one_of(from_schema(schema), mutated, json_values)


@pytest.mark.parametrize("endpoint", ["chat", "completion"])
def test_fuzzed_bodies_never_get_a_5xx(server, client, endpoint):
    path, bodies = _fuzz(server, endpoint)

    @settings(max_examples=25, deadline=None, derandomize=True,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture,
                                     HealthCheck.filter_too_much, HealthCheck.data_too_large])
    @given(bodies)
    def check(b):
        for key in ("max_tokens", "max_completion_tokens"):   # keep the generations short
            if isinstance(b, dict) and type(b.get(key)) is int:
                b[key] = min(b[key], 8)
        r = client.post(path, headers=AUTH, json=b)
        assert r.status_code < 500, (b, r.text)
        if r.status_code >= 400:
            assert r.json()["error"]["message"]

    check()
    assert client.post("/v1/chat/completions", headers=AUTH, json=GOOD).status_code == 200
