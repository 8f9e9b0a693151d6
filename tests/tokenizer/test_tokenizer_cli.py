"""`groundup tokenizer ...`: the verbs work end to end; bad input is one line, exit 2."""

import json
import subprocess
import sys

import pytest

from groundup.cli import main


@pytest.fixture(scope="module")
def tok_dir(tmp_path_factory):
    corpus = tmp_path_factory.mktemp("corpus")
    (corpus / "a.py").write_text("def add(a, b):\n    return a + b\n\n" * 50)
    (corpus / "b.md").write_text("# Title\n\nSome prose about adding numbers.\n" * 30)
    out = tmp_path_factory.mktemp("tok")
    assert main(["tokenizer", "train", "--input", str(corpus), "--vocab-size", "300",
                 "--out", str(out)]) == 0
    return out


def groundup(*args, stdin=None):
    return subprocess.run([sys.executable, "-m", "groundup", "tokenizer", *args], input=stdin,
                          capture_output=True, text=True, timeout=120)


def test_train_writes_a_tokenizer_directory(tok_dir):
    for name in ("tokenizer.json", "tokenizer.tiktoken", "groundup_tokenizer.json",
                 "tokenizer_config.json"):
        assert (tok_dir / name).is_file()


def test_encode_decode_pipe(tok_dir):
    p = groundup("encode", "--tokenizer", str(tok_dir), "--json", stdin="def add(x):\n  ü😀")
    assert p.returncode == 0, p.stderr
    ids = json.loads(p.stdout)["ids"]
    assert all(isinstance(i, int) for i in ids)
    p2 = groundup("decode", "--tokenizer", str(tok_dir), stdin=p.stdout)
    assert p2.returncode == 0 and p2.stdout == "def add(x):\n  ü😀"
    p3 = groundup("decode", "--tokenizer", str(tok_dir / "tokenizer.json"),
                  "--ids", ",".join(map(str, ids)))
    assert p3.stdout == "def add(x):\n  ü😀"


def test_encode_text_and_specials(tok_dir, capsys):
    assert main(["tokenizer", "encode", "--tokenizer", str(tok_dir), "--text", "<|user|>"]) == 0
    plain = capsys.readouterr().out.strip()
    assert main(["tokenizer", "encode", "--tokenizer", str(tok_dir), "--text", "<|user|>",
                 "--allow-special"]) == 0
    special = capsys.readouterr().out.strip()
    assert special == "271" and "," in plain      # 268 ordinary ids, then <|begin_of_text|>...


def test_stats(tok_dir, capsys):
    assert main(["tokenizer", "stats", "--tokenizer", str(tok_dir), "--input",
                 str(tok_dir / "tokenizer_config.json")]) == 0
    out = capsys.readouterr().out
    assert "vocabulary       300" in out and "bytes per token" in out


@pytest.mark.parametrize("args, message", [
    (["train", "--vocab-size", "100", "--out", "X"], "at least 288"),
    (["train", "--input", "/no/such/path", "--out", "X"], "does not exist"),
    (["encode", "--tokenizer", "/no/such/tok", "--text", "x"], "does not exist"),
    (["decode", "--tokenizer", "TOK", "--ids", "1,two"], "must be integers"),
    (["decode", "--tokenizer", "TOK", "--ids", "5,999999"], "not in this tokenizer"),
])
def test_bad_input_is_one_line(tok_dir, tmp_path, args, message):
    # whole-argument placeholders: the temporary path itself may contain "X" or "TOK"
    args = [{"TOK": str(tok_dir), "X": str(tmp_path / "out")}.get(a, a) for a in args]
    p = groundup(*args)
    assert p.returncode == 2
    assert message in p.stderr and "Traceback" not in p.stderr
    assert len(p.stderr.strip().splitlines()) == 1


def test_unsupported_tokenizer_json_is_one_line(tmp_path):
    (tmp_path / "tokenizer.json").write_text(json.dumps({"model": {"type": "Unigram"}}))
    p = groundup("encode", "--tokenizer", str(tmp_path), "--text", "x")
    assert p.returncode == 2 and "unsupported tokenizer model type 'Unigram'" in p.stderr
    assert "Traceback" not in p.stderr
