"""`groundup train ...` as a user runs it: sft from a conversations file, plot, clear errors.

In-process through `groundup.cli.main` (the real dispatcher, argument parsing and error
printing); the subprocess path is exercised by test_train_resume.py.
"""

import json
from types import SimpleNamespace

import pytest
import torch

from groundup.cli import main


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)   # tiny models: a second thread only waits for a busy core
    yield
    torch.set_num_threads(n)


@pytest.fixture
def groundup(capfd):
    def call(*args, timeout=None):
        rc = main([str(a) for a in args])
        out, err = capfd.readouterr()
        return SimpleNamespace(returncode=rc, stdout=out, stderr=err)
    return call


@pytest.fixture(scope="module")
def base(corpus_dir, tok_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("cli") / "base"
    rc = main([str(a) for a in ("train", "base", "--data", corpus_dir, "--tokenizer", tok_dir, "--depth", 1, "--seq-len", 32,
                 "--context-len", 64, "--batch-size", 4, "--steps", 3, "--eval-every", 3, "--eval-tokens", 128,
                 "--out", out, "--quiet")])
    assert rc == 0
    return out


def test_sft_from_a_conversations_file_then_plot(base, tmp_path, groundup):
    conv = {"messages": [{"role": "user", "content": "hi"},
                         {"role": "assistant", "content": "hello! what shall we fix?"}], "tools": []}
    data = tmp_path / "chats.jsonl"
    data.write_text("\n".join(json.dumps(conv) for _ in range(12)) + "\n")
    out = tmp_path / "sft"
    r = groundup("train", "sft", "--init", base, "--data", data, "--out", out, "--seq-len", 64,
                 "--batch-size", 2, "--steps", 3, "--eval-every", 3, "--eval-tokens", 128)
    assert r.returncode == 0, r.stderr
    assert (out / "model.safetensors").exists() and (out / "config.json").exists()
    assert "sample:" in r.stderr                              # the chat prompt was continued
    r = groundup("train", "plot", out)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == str(out / "loss.png")
    png = out / "loss.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 5000


@pytest.mark.parametrize("args, message", [
    (["sft", "--init", "{base}", "--data", "{bad}", "--out", "{tmp}/o"], "not JSON"),
    (["sft", "--init", "{base}", "--data", "{tmp}/nope.jsonl", "--out", "{tmp}/o"], "does not exist"),
    (["sft", "--init", "{tmp}", "--data", "{bad}", "--out", "{tmp}/o"], "no config.json"),
    (["sft", "--init", "{base}", "--data", "{good}", "--out", "{tmp}/o", "--seq-len", "128"],
     "above the context"),
    (["base", "--data", "{empty}", "--tokenizer", "{base}", "--out", "{tmp}/o"], "no text"),
    (["base", "--data", "{tmp}/missing", "--out", "{tmp}/o"], "does not exist"),
    (["base", "--tokenizer", "{base}", "--data", "{empty}", "--out", "{base}"], "pass --resume"),
    (["plot", "{tmp}"], "no metrics.jsonl"),
])
def test_bad_input_is_one_clear_line(base, tmp_path, args, message, groundup):
    (tmp_path / "bad.jsonl").write_text("{not json\n")
    (tmp_path / "good.jsonl").write_text(json.dumps({"messages": [{"role": "user", "content": "x"}]}) + "\n")
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "a.py").write_text("  \n")
    fill = dict(base=base, tmp=tmp_path, bad=tmp_path / "bad.jsonl", good=tmp_path / "good.jsonl",
                empty=tmp_path / "empty")
    before = sorted(p.name for p in base.iterdir())
    r = groundup("train", *[a.format(**fill) for a in args])
    assert r.returncode == 2, r.stderr
    assert message in r.stderr and "Traceback" not in r.stderr
    assert [line.startswith("groundup: error: ") for line in r.stderr.strip().splitlines()][-1:] == [True]
    assert r.stderr.count("error") == 1
    assert sorted(p.name for p in base.iterdir()) == before   # nothing written into the run


def test_without_a_tokenizer_one_is_trained_and_kept_in_the_run(corpus_dir, tmp_path, groundup):
    from groundup.model import load_model
    from groundup.tokenizer import load_tokenizer
    out = tmp_path / "run"
    r = groundup("train", "base", "--data", corpus_dir, "--vocab-size", 320, "--depth", 1, "--seq-len", 32,
                 "--batch-size", 4, "--steps", 1, "--eval-tokens", 64, "--out", out)
    assert r.returncode == 0, r.stderr
    assert "training a 320-token tokenizer" in r.stderr
    assert load_tokenizer(out).vocab_size == 320 == load_model(out).config.vocab_size
