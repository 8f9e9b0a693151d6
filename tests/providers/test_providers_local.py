"""LocalModel end to end on model directories made here: a random-weight HF Qwen2-style
model with a Qwen2.5-style chat template, a Llama 3.1-style one, and directories in our own
chat format."""

from pathlib import Path

import pytest
import torch

pytest.importorskip("transformers")
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers  # noqa: E402
from transformers import PreTrainedTokenizerFast, Qwen2Config, Qwen2ForCausalLM  # noqa: E402

from groundup.chat.template import parse_hermes  # noqa: E402
from groundup.providers import collect, load_model  # noqa: E402
from groundup.providers.base import Finish, TextDelta, ToolCallEvent  # noqa: E402

TEMPLATE = Path(__file__).parents[1] / "chat" / "test_chat_template.py"

TOOLS = [{"name": "run", "description": "Run a command.",
          "parameters": {"type": "object", "properties": {"command": {"type": "string"}}, "required": ["command"]}}]
SAY = "Let me look.\n"
CALL = '<tool_call>\n{"name": "run", "arguments": {"command": "ls -la"}}\n</tool_call>'


LLAMA_CALL = '{"name": "run", "parameters": {"command": "ls -la"}}'


def template_source(name):
    """A template written out in tests/chat/test_chat_template.py (QWEN_STYLE, LLAMA_STYLE)."""
    src = TEMPLATE.read_text()
    start = src.index(f'{name} = r"""') + len(f'{name} = r"""')
    return src[start:src.index('"""', start)]


def make_hf_tokenizer(style="qwen"):
    specials = (["<|endoftext|>", "<|im_start|>", "<|im_end|>"] if style == "qwen" else
                ["<|begin_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>",
                 "<|eom_id|>", "<|python_tag|>"])
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=400, special_tokens=specials,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(["You are a helpful assistant. Run the tests, read the file.\n" * 50], trainer)
    if style == "qwen":
        hf = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|im_end|>", pad_token="<|endoftext|>")
        hf.chat_template = template_source("QWEN_STYLE")
        # ordinary (non-special) added tokens, so a scripted model can say a sentence and a
        # whole Hermes tool call in one token each
        hf.add_tokens([SAY, CALL])
    else:
        hf = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<|begin_of_text|>", eos_token="<|eot_id|>")
        hf.chat_template = template_source("LLAMA_STYLE")
        hf.add_tokens([LLAMA_CALL])
    return hf


def scripted_model(tmp_path, hf_tok, chain, arch="qwen2"):
    model = scripted_weights(tmp_path, len(hf_tok), chain, arch,
                             eos_id=hf_tok.convert_tokens_to_ids(hf_tok.eos_token), bos_id=hf_tok.bos_token_id)
    hf_tok.save_pretrained(tmp_path)
    return model


def scripted_weights(tmp_path, vocab_size, chain, arch="qwen2", eos_id=None, bos_id=None):
    """A random-weight Qwen2 (or Llama) whose layers add nothing to the residual stream
    (o_proj and down_proj zeroed), so the next token depends only on the current one; its
    lm_head is then set to follow `chain`: [(token, next token), ...]."""
    from transformers import LlamaConfig, LlamaForCausalLM
    config_cls, model_cls = (Qwen2Config, Qwen2ForCausalLM) if arch == "qwen2" else (LlamaConfig, LlamaForCausalLM)
    cfg = config_cls(vocab_size=vocab_size, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                     num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=1024,
                     tie_word_embeddings=False, eos_token_id=eos_id, bos_token_id=bos_id)
    torch.manual_seed(0)
    model = model_cls(cfg).eval()
    with torch.no_grad():
        for layer in model.model.layers:
            layer.self_attn.o_proj.weight.zero_()
            layer.mlp.down_proj.weight.zero_()
        emb = model.model.embed_tokens.weight
        normed = emb / emb.pow(2).mean(-1, keepdim=True).add(cfg.rms_norm_eps).sqrt()
        head = torch.zeros_like(model.lm_head.weight)
        for src, dst in chain:
            head[dst] = normed[src] * 10
        model.lm_head.weight.copy_(head)
    model.save_pretrained(tmp_path)
    return model


def scripted_qwen2(tmp_path, hf_tok, prompt_ids):
    """last prompt token -> SAY -> CALL -> <|im_end|>"""
    say, call = hf_tok.convert_tokens_to_ids([SAY, CALL])
    return scripted_model(tmp_path, hf_tok, [(prompt_ids[-1], say), (say, call),
                                             (call, hf_tok.convert_tokens_to_ids("<|im_end|>"))])


def test_hf_qwen2_directory_end_to_end(tmp_path):
    hf_tok = make_hf_tokenizer()
    msgs = [{"role": "user", "content": "list the files"}]
    hf_tools = [{"type": "function", "function": TOOLS[0]}]
    text = hf_tok.apply_chat_template(msgs, tools=hf_tools, tokenize=False, add_generation_prompt=True)
    hf_ids = hf_tok(text, add_special_tokens=False)["input_ids"]
    hf_model = scripted_qwen2(tmp_path, hf_tok, hf_ids)

    m = load_model(f"local:{tmp_path}")
    assert m.template is not None and m.template.tool_format == "hermes"
    assert m.prompt_ids(msgs, TOOLS) == hf_ids              # same template, same ids as transformers

    events = list(m.stream(msgs, TOOLS, max_tokens=8))
    assert [type(e) for e in events] == [TextDelta, ToolCallEvent, Finish]
    assert events[0].text == SAY
    call = events[1].call
    assert (call.name, call.arguments, call.error) == ("run", {"command": "ls -la"}, None)
    assert events[2].reason == "tool_calls" and events[2].usage.prompt_tokens == len(hf_ids)

    # the same tokens as transformers' greedy generate, and the same parse of its text
    out = hf_model.generate(torch.tensor([hf_ids]), max_new_tokens=8, do_sample=False)[0, len(hf_ids):]
    hf_text = hf_tok.decode(out, skip_special_tokens=True)
    ref_text, ref_calls = parse_hermes(hf_text, TOOLS)
    assert ref_text == SAY and [(c.name, c.arguments) for c in ref_calls] == [("run", {"command": "ls -la"})]
    assert events[2].usage.completion_tokens == len(out)


def test_hf_llama_directory_uses_the_json_call_form(tmp_path):
    hf_tok = make_hf_tokenizer("llama")
    msgs = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "list the files"}]
    text = hf_tok.apply_chat_template(msgs, tools=[{"type": "function", "function": TOOLS[0]}], tokenize=False,
                                      add_generation_prompt=True)
    hf_ids = hf_tok(text, add_special_tokens=False)["input_ids"]
    assert hf_ids[0] == hf_tok.bos_token_id
    call = hf_tok.convert_tokens_to_ids(LLAMA_CALL)
    scripted_model(tmp_path, hf_tok, [(hf_ids[-1], call), (call, hf_tok.convert_tokens_to_ids("<|eot_id|>"))],
                   arch="llama")
    m = load_model(f"local:{tmp_path}")
    assert m.template.tool_format == "llama3"
    assert m.prompt_ids(msgs, TOOLS) == hf_ids       # one BOS, from the template, as transformers
    events = list(m.stream(msgs, TOOLS, max_tokens=8))
    assert [type(e) for e in events] == [ToolCallEvent, Finish]
    assert (events[0].call.name, events[0].call.arguments, events[0].call.error) == ("run", {"command": "ls -la"}, None)
    assert events[1].reason == "tool_calls"


def test_our_own_model_directory_uses_our_chat_format(tmp_path):
    from groundup.chat.format import render_prompt
    from groundup.model import ModelConfig, Transformer
    from groundup.tokenizer import train_tokenizer
    from groundup.tokenizer.special import SPECIAL_TOKENS

    tok = train_tokenizer(["def f(x): return x\n" * 30], vocab_size=256 + len(SPECIAL_TOKENS) + 20, progress=False)
    cfg = ModelConfig.from_depth(1, vocab_size=tok.vocab_size, max_seq_len=256)
    torch.manual_seed(0)
    model = Transformer(cfg)
    from groundup.model import save_model
    save_model(model, tmp_path)
    tok.save(tmp_path)
    m = load_model(f"local:{tmp_path}", seed=0)
    assert m.template is None
    msgs = [{"role": "user", "content": "hi"}]
    assert m.prompt_ids(msgs, TOOLS) == render_prompt(msgs, TOOLS, tok)
    msg, fin = collect(m.stream(msgs, TOOLS, max_tokens=5))
    assert fin.reason in ("stop", "length", "tool_calls") and 1 <= fin.usage.completion_tokens <= 5
    assert isinstance(msg["content"], str)


def test_groundup_chat_command_on_a_model_dir(tmp_path):
    import subprocess
    import sys
    hf_tok = make_hf_tokenizer()
    msgs = [{"role": "user", "content": "hello there"}]
    text = hf_tok.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True)
    scripted_qwen2(tmp_path, hf_tok, hf_tok(text, add_special_tokens=False)["input_ids"])
    p = subprocess.run([sys.executable, "-m", "groundup", "chat", "--model", str(tmp_path), "--temperature", "0"],
                       input="hello there\n/exit\n", capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    assert p.stdout.startswith(SAY) and "[tool call run" in p.stdout
    # the same in a terminal (pexpect gives it a pty: prompt, line editing, streamed answer)
    pexpect = pytest.importorskip("pexpect")
    child = pexpect.spawn(sys.executable, ["-m", "groundup", "chat", "--model", str(tmp_path), "--temperature", "0"],
                          timeout=120, encoding="utf-8")
    child.expect("> ")
    child.sendline("hello there")
    child.expect(r"Let me look\.")
    child.expect(r"\[tool call run")
    child.expect("> ")
    child.sendline("/exit")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0
    bad = subprocess.run([sys.executable, "-m", "groundup", "chat", "--model", str(tmp_path / "nope")],
                         capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "not found" in bad.stderr and "Traceback" not in bad.stderr


def test_our_format_end_to_end_token_aware(tmp_path):
    """A directory with our tokenizer and no chat template: our format. The scripted model
    answers text + one tool call, token by token, and LocalModel parses it on the tokens."""
    from groundup.chat.format import render_conversation, render_prompt
    from groundup.tokenizer import train_tokenizer
    from groundup.tokenizer.special import SPECIAL_TOKENS

    tok = train_tokenizer(['Hi. run{"command":"ls"}\n' * 40], vocab_size=256 + len(SPECIAL_TOKENS) + 40,
                          progress=False)
    msgs = [{"role": "user", "content": "go"}]
    answer = {"role": "assistant", "content": "Hi.", "tool_calls": [{"name": "run", "arguments": {"command": "ls"}}]}
    prompt = render_prompt(msgs, TOOLS, tok)
    generated = render_conversation(msgs + [answer], TOOLS, tok)[0][len(prompt):]
    chain_ids = [prompt[-1], *generated]
    assert len(set(chain_ids)) == len(chain_ids)     # a next-token map can only follow distinct tokens
    scripted_weights(tmp_path, tok.vocab_size, list(zip(chain_ids, chain_ids[1:])), arch="llama",
                     eos_id=tok.special_tokens["<|end_of_text|>"])
    tok.save(tmp_path)
    m = load_model(f"local:{tmp_path}")
    assert m.template is None and m.compact_prompt
    events = list(m.stream(msgs, TOOLS, max_tokens=40))
    assert "".join(e.text for e in events if isinstance(e, TextDelta)) == "Hi."
    calls = [e.call for e in events if isinstance(e, ToolCallEvent)]
    assert [(c.name, c.arguments, c.error) for c in calls] == [("run", {"command": "ls"}, None)]
    assert events[-1].reason == "tool_calls" and events[-1].usage.completion_tokens == len(generated)

    # a conversation that leaves no room for an answer: "context overflow", which the agent compacts on
    from groundup.providers import ProviderError
    long = [{"role": "user", "content": "run ls " * 400}]
    with pytest.raises(ProviderError, match="context overflow"):
        list(m.stream(long, TOOLS))


def test_batched_local_model_serves_threads_with_the_tokens_each_gets_alone(tmp_path):
    """LocalModel(batch=N): several threads share one continuous-batching engine (as parallel
    evaluation does); each conversation's answer is exactly the one it gets from an unbatched
    model, and a stream the caller abandons frees its slot for the next one."""
    from concurrent.futures import ThreadPoolExecutor

    from groundup.model import ModelConfig, Transformer, save_model
    from groundup.tokenizer import train_tokenizer
    from groundup.tokenizer.special import SPECIAL_TOKENS

    tok = train_tokenizer(["def f(x): return x + 1\nrun the tests\n" * 30],
                          vocab_size=256 + len(SPECIAL_TOKENS) + 30, progress=False)
    torch.manual_seed(0)
    save_model(Transformer(ModelConfig.from_depth(2, vocab_size=tok.vocab_size, max_seq_len=256)), tmp_path)
    tok.save(tmp_path)
    convs = [[{"role": "user", "content": "fix it " * k}] for k in range(1, 7)]
    alone = load_model(f"local:{tmp_path}")
    want = [collect(alone.stream(c, TOOLS, max_tokens=12 + 3 * i)) for i, c in enumerate(convs)]
    batched = load_model(f"local:{tmp_path}", batch=3)
    try:
        assert batched.shareable and not alone.shareable
        it = batched.stream(convs[0], TOOLS, max_tokens=50)
        next(it)
        it.close()                                   # abandoned after one event: slot freed
        with ThreadPoolExecutor(6) as pool:          # 6 conversations, 3 slots
            got = list(pool.map(lambda ic: collect(batched.stream(ic[1], TOOLS, max_tokens=12 + 3 * ic[0])),
                                enumerate(convs)))
    finally:
        batched.close()
    assert [(m, f.reason, f.usage) for m, f in got] == [(m, f.reason, f.usage) for m, f in want]
    assert any(f.usage.completion_tokens > 1 for _, f in want)


def test_finish_carries_the_ids_shown_and_produced_and_sampling_is_per_call(tmp_path):
    """The last event says which ids the model was shown and which it produced (reinforcement
    learning trains on exactly those); `sampling=` sets temperature and seed for one call, and a
    seeded sample is the same alone and through the batched engine."""
    from groundup.chat.format import parse_assistant, render_prompt
    from groundup.model import ModelConfig, Transformer, save_model
    from groundup.tokenizer import train_tokenizer
    from groundup.tokenizer.special import SPECIAL_TOKENS

    tok = train_tokenizer(["def f(x): return x + 1\nrun the tests\n" * 30],
                          vocab_size=256 + len(SPECIAL_TOKENS) + 30, progress=False)
    torch.manual_seed(0)
    save_model(Transformer(ModelConfig.from_depth(1, vocab_size=tok.vocab_size, max_seq_len=256)), tmp_path)
    tok.save(tmp_path)
    msgs = [{"role": "user", "content": "fix it"}]
    m = load_model(f"local:{tmp_path}")
    msg, fin = collect(m.stream(msgs, TOOLS, max_tokens=20))
    assert fin.prompt_ids == render_prompt(msgs, TOOLS, tok)
    assert len(fin.token_ids) == fin.usage.completion_tokens
    assert parse_assistant(fin.token_ids, TOOLS, tokenizer=tok)[0] == msg["content"]

    def sample(model, seed):
        return collect(model.stream(msgs, TOOLS, max_tokens=20,
                                    sampling={"temperature": 1.0, "seed": seed}))[1].token_ids
    a, b = sample(m, 1), sample(m, 2)
    assert a == sample(m, 1) and a != b and a != fin.token_ids      # greedy stays the default
    batched = load_model(f"local:{tmp_path}", batch=2)
    try:
        assert [sample(batched, 1), sample(batched, 2)] == [a, b]
    finally:
        batched.close()
