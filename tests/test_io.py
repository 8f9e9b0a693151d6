"""Durable files: appends after a crash start on a clean line, readers skip what they cannot
decode (any bytes), and a safetensors file is checked whole without torch."""

import json

import numpy as np
import pytest
from safetensors.numpy import save_file

from groundup.errors import UserError
from groundup.io import append_jsonl, read_jsonl, safetensors_header


def test_append_after_a_torn_tail_starts_a_new_line(tmp_path):
    p = tmp_path / "s.jsonl"
    append_jsonl(p, {"role": "user", "content": "one"})
    with open(p, "ab") as f:
        f.write(b'{"role": "assistan')              # the writer died mid-line
    append_jsonl(p, {"role": "user", "content": "two"})
    lines = p.read_bytes().split(b"\n")
    assert lines[1] == b'{"role": "assistan'
    assert json.loads(lines[2]) == {"role": "user", "content": "two"}
    warnings = []
    assert list(read_jsonl(p, warn=warnings.append)) == [{"role": "user", "content": "one"},
                                                          {"role": "user", "content": "two"}]
    assert len(warnings) == 1 and ":2:" in warnings[0]


def test_reader_skips_any_bytes_with_a_bounded_number_of_warnings(tmp_path):
    p = tmp_path / "m.jsonl"
    p.write_bytes(b'{"a": 1}\n\xff\xfe\xfd\n\x00\x00\x00\x00\n[1, 2]\n"text"\n{"b": 2}\n{"c": ')
    warnings = []
    assert list(read_jsonl(p, warn=warnings.append, max_warnings=2)) == [{"a": 1}, {"b": 2}]
    assert len(warnings) == 3 and "skipped 3 more" in warnings[-1]
    assert "not UTF-8" in warnings[0] and "truncated or corrupt" in warnings[1]


def test_undecodable_text_from_a_tool_survives_the_round_trip(tmp_path):
    p = tmp_path / "s.jsonl"
    odd = b"caf\xe9 \xff".decode("utf-8", "surrogateescape")     # lone surrogates
    append_jsonl(p, {"content": odd})
    assert list(read_jsonl(p)) == [{"content": odd}]


def test_safetensors_header_checks_the_whole_file(tmp_path):
    good = tmp_path / "model.safetensors"
    save_file({"w": np.ones((4, 8), dtype=np.float32), "b": np.zeros(3, dtype=np.float32)}, str(good))
    header = safetensors_header(good)
    assert set(header) - {"__metadata__"} == {"w", "b"}
    data = good.read_bytes()
    for name, damaged, says in [
        ("cut", data[: len(data) - 5], "truncated"),
        ("short", data[:5], "shorter than its header"),
        ("grown", data + b"\0" * 7, "trailing bytes"),
        ("header", data[:8] + b"\xff" * 20 + data[28:], "not JSON"),
        ("huge", (10 ** 12).to_bytes(8, "little") + data[8:], "claims"),
    ]:
        bad = tmp_path / f"{name}.safetensors"
        bad.write_bytes(damaged)
        with pytest.raises(UserError, match=says):
            safetensors_header(bad)
