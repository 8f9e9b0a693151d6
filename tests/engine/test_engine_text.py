"""Text out of the engine: incremental UTF-8-safe deltas, stop strings, and the `generate` CLI,
with a real (tiny) groundup tokenizer saved next to the model, as our model directories are."""

import json
import subprocess
import sys

import pytest
import torch

from groundup.cli import main
from groundup.engine import SamplingParams, load_engine
from groundup.engine.detok import TextStream
from groundup.model import ModelConfig, Transformer, save_model
from groundup.tokenizer import train_tokenizer

CORPUS = ["hello world, héllo wörld 😀 emoji 日本語 def foo(): return 1\n" * 50]


@pytest.fixture(scope="module")
def tok():
    return train_tokenizer(CORPUS, vocab_size=300, progress=False)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory, tok):
    torch.manual_seed(0)
    cfg = ModelConfig.from_depth(2, tok.vocab_size, max_seq_len=128)
    model = Transformer(cfg)
    model.init_weights()
    with torch.no_grad():   # sharper output distribution than the 0.02 init, so samples vary
        model.lm_head.weight.mul_(30)
    d = tmp_path_factory.mktemp("ours")
    save_model(model, d)
    tok.save(d)
    return d


def test_multibyte_characters_wait_for_their_last_byte(tok):
    ids = tok.encode("a😀b日本")
    ts = TextStream(tok)
    deltas = [ts.push(i)[0] for i in ids] + [ts.finish()]
    assert "".join(deltas) == "a😀b日本"
    assert all("\ufffd" not in d for d in deltas)
    assert "" in deltas          # the emoji's first bytes produced no text yet


def test_stop_string_spanning_tokens_is_cut_and_never_emitted(tok):
    ids = tok.encode("hello world, héllo")
    ts = TextStream(tok, ("o w",))
    out, stopped = "", False
    for i in ids:
        d, stopped = ts.push(i)
        out += d
        if stopped:
            break
    assert stopped and out == "hell" and ts.text == "hell"
    # a partial match that never completes is released at the end
    ts = TextStream(tok, ("wörld!",))
    out = "".join(ts.push(i)[0] for i in tok.encode("hello wörld")) + ts.finish()
    assert out == "hello wörld"


def test_streamed_text_equals_decoded_ids(model_dir, tok):
    eng = load_engine(model_dir, device="cpu")
    assert eng.tokenizer is not None and tok.eos_id in eng.eos_ids
    prompt = eng.encode("hello")
    assert prompt[0] == tok.bos_id
    params = SamplingParams(max_new_tokens=40, temperature=1.0, seed=1)
    events = list(eng.stream(prompt, params))
    ids = [e.token_id for e in events]
    text = "".join(e.text for e in events)
    body = ids[:-1] if events[-1].finish_reason == "stop" else ids   # EOS is an id, not text
    assert text == tok.decode(body)
    res = eng.generate(prompt, params)
    assert res.token_ids == ids and res.text == text


def test_stop_strings_in_generation(model_dir, tok):
    eng = load_engine(model_dir, device="cpu")
    prompt = eng.encode("héllo")
    full = eng.generate(prompt, SamplingParams(max_new_tokens=60, temperature=1.0, seed=3))
    assert len(full.text) > 6
    stop = full.text[3:6]
    cut = full.text[:full.text.find(stop)]
    res = eng.generate(prompt, SamplingParams(max_new_tokens=60, temperature=1.0, seed=3, stop_strings=(stop,)))
    assert res.finish_reason == "stop" and res.text == cut
    streamed = "".join(e.text for e in eng.stream(prompt, SamplingParams(
        max_new_tokens=60, temperature=1.0, seed=3, stop_strings=(stop,))))
    assert streamed == cut


def test_generate_cli_json(model_dir, capsys):
    assert main(["generate", "--model", str(model_dir), "--prompt-ids", "268,5,6", "--max-new-tokens", "7",
                 "--json", "--device", "cpu"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert set(out) == {"text", "token_ids", "finish_reason", "usage", "timing"}
    assert set(out["usage"]) == {"prompt_tokens", "completion_tokens"}
    assert set(out["timing"]) == {"load_s", "prefill_s", "decode_s", "decode_tokens_per_s"}
    assert out["usage"]["prompt_tokens"] == 3 and out["usage"]["completion_tokens"] == len(out["token_ids"])
    eng = load_engine(model_dir, device="cpu")
    assert out["token_ids"] == eng.generate([268, 5, 6], SamplingParams(max_new_tokens=7)).token_ids


def test_generate_cli_streams_text(model_dir, capsys):
    assert main(["generate", "--model", str(model_dir), "--prompt", "hello", "--max-new-tokens", "5",
                 "--temperature", "0.8", "--seed", "1", "--device", "cpu"]) == 0
    captured = capsys.readouterr()
    assert captured.out.startswith("hello") and "tokens in" in captured.err


def test_generate_cli_without_tokenizer(tmp_path, capsys):
    model = Transformer(ModelConfig.from_depth(1, 64, max_seq_len=32))
    model.init_weights()
    save_model(model, tmp_path)
    assert main(["generate", "--model", str(tmp_path), "--prompt-ids", "1,2", "--max-new-tokens", "3", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["text"] is None and len(out["token_ids"]) == 3
    assert main(["generate", "--model", str(tmp_path), "--prompt", "hi"]) == 2
    assert "use --prompt-ids" in capsys.readouterr().err
    assert main(["generate", "--model", str(tmp_path), "--prompt-ids", "1," * 40]) == 2
    assert "context is 32" in capsys.readouterr().err


def test_generate_cli_bad_dir_is_one_line():
    p = subprocess.run([sys.executable, "-m", "groundup", "generate", "--model", "/nonexistent/dir",
                        "--prompt-ids", "1"], capture_output=True, text=True, timeout=120)
    assert p.returncode == 2
    assert p.stderr.strip().count("\n") == 0 and "does not exist" in p.stderr


def test_hf_model_directory_with_hf_tokenizer(tmp_path):
    """A transformers-made directory: tokenizer.json from `tokenizers`, EOS from generation_config."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    tk = Tokenizer(models.BPE())
    tk.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tk.decoder = decoders.ByteLevel()
    tk.train_from_iterator(CORPUS, trainers.BpeTrainer(vocab_size=300, special_tokens=["<s>", "</s>"],
                                                       initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    hf_tok = PreTrainedTokenizerFast(tokenizer_object=tk, bos_token="<s>", eos_token="</s>")
    torch.manual_seed(0)
    hf = LlamaForCausalLM(LlamaConfig(hidden_size=64, num_attention_heads=4, num_key_value_heads=2,
                                      intermediate_size=128, num_hidden_layers=2, vocab_size=len(hf_tok),
                                      bos_token_id=0, eos_token_id=1, initializer_range=0.2))
    hf.save_pretrained(tmp_path)
    hf_tok.save_pretrained(tmp_path)
    eng = load_engine(tmp_path, device="cpu")
    assert eng.eos_ids == (1,)
    assert eng.encode("héllo wörld") == [0] + hf_tok("héllo wörld").input_ids
    res = eng.generate(eng.encode("hello"), SamplingParams(max_new_tokens=30, temperature=1.0, seed=0))
    body = res.token_ids[:-1] if res.finish_reason == "stop" else res.token_ids
    assert res.text == hf_tok.decode(body)
