"""`groundup export`: write a model directory that the wider ecosystem loads.

    groundup export --model runs/x/model --format hf --out exported/
    groundup export --model runs/x/model --format gguf --out model.gguf   (gguf_export.py)

Our model directories already use Hugging Face's file formats, so export means: load the
weights (checking them against config.json), write a clean config.json + model.safetensors
(optionally in another dtype), copy the tokenizer and generation files that transformers
reads, and write a generation_config.json with the EOS ids. The result loads with
`transformers.AutoModelForCausalLM.from_pretrained(out)` and `AutoTokenizer.from_pretrained(out)`,
and from there vLLM, SGLang or llama.cpp's `convert_hf_to_gguf.py`.
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

from groundup.argtypes import checked, model_dir, output_dir, output_file
from groundup.errors import UserError
from groundup.io import atomic_write_json

# files that travel with the weights (whichever exist): tokenizer, its config, chat template
COPY = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "chat_template.jinja",
        "tokenizer.model", "vocab.json", "merges.txt", "generation_config.json")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = (
        "example:\n  groundup export --model runs/cpu/model --format hf --out exported/\n\n"
        "The output holds config.json (LlamaForCausalLM / Qwen2 / Qwen3), model.safetensors,\n"
        "generation_config.json and the tokenizer files: transformers' AutoModelForCausalLM and\n"
        "AutoTokenizer load it, and from there vLLM, SGLang or llama.cpp's convert_hf_to_gguf.py.\n\n"
        "--format gguf writes one .gguf file (weights, tokenizer, chat template) that llama.cpp,\n"
        "Ollama and LM Studio run: groundup export --model DIR --format gguf --out model.gguf\n"
        "(needs the gguf package: pip install 'groundup[gguf]').")
    parser.add_argument("--model", required=True, metavar="DIR", type=model_dir,
                        help="the model directory to export")
    parser.add_argument("--format", default="hf", choices=["hf", "gguf"],
                        help="hf = Hugging Face transformers layout (config.json + safetensors); "
                             "gguf = one llama.cpp file")
    parser.add_argument("--out", required=True, metavar="PATH",
                        help="output directory for hf (created if missing), output file for gguf")
    parser.add_argument("--dtype", default=None, choices=["float32", "bfloat16", "float16"],
                        help="convert the weights to this dtype (default: keep the checkpoint's)")


def export_hf(model_dir: Path, out: Path, dtype: str | None = None) -> list[str]:
    """Export; returns the names of the files written."""
    if out.resolve() == model_dir.resolve():
        raise UserError("--out must differ from --model (export writes a fresh directory)")
    from groundup.model.checkpoint import load_model, parse_dtype, save_model

    model = load_model(model_dir, dtype=parse_dtype(dtype), device="cpu")
    cfg = model.config
    if cfg.eos_token_id is None and ((model_dir / "tokenizer.json").is_file()
                                     or (model_dir / "groundup_tokenizer.json").is_file()):
        # our training may leave BOS/EOS to the tokenizer; HF generate wants them in the config
        from groundup.tokenizer import load_tokenizer
        tok = load_tokenizer(model_dir)
        cfg.bos_token_id, cfg.eos_token_id = tok.bos_id, tok.eos_id
    save_model(model, out)
    written = ["config.json", "model.safetensors"]
    for name in COPY:
        if (model_dir / name).is_file():
            shutil.copyfile(model_dir / name, out / name)
            written.append(name)
    if not (out / "generation_config.json").exists():
        gen = {"bos_token_id": cfg.bos_token_id, "eos_token_id": cfg.eos_token_id}
        atomic_write_json(out / "generation_config.json", {k: v for k, v in gen.items() if v is not None})
        written.append("generation_config.json")
    return written


def run(args: argparse.Namespace) -> int:
    # hf writes a directory, gguf one file: the check depends on --format, so it is made here
    checked(output_file if args.format == "gguf" else output_dir, args.out, "--out")
    model_dir, out = Path(args.model), Path(args.out)
    if args.format == "gguf":
        from groundup.model.gguf_export import export_gguf
        if out.is_dir():
            raise UserError(f"--out {out} is a directory: GGUF export writes one file (e.g. {out / 'model.gguf'})")
        if not (model_dir / "config.json").is_file():
            raise UserError(f"{model_dir} is not a model directory (no config.json)")
        from groundup.chat.template import load_chat_template
        template = load_chat_template(model_dir)
        info = export_gguf(model_dir, out, args.dtype, template.source if template else None)
        print(f"exported {info['arch']} ({info['dtype']}, {info['tensors']} tensors, {info['vocab']} tokens, "
              f"pre-tokenizer {info['pre']}{', chat template' if info['chat_template'] else ''}) to {out}")
        return 0
    written = export_hf(model_dir, out, args.dtype)
    cfg = json.loads((out / "config.json").read_text())
    print(f"exported {cfg['architectures'][0]} ({cfg['torch_dtype']}) to {out}: {', '.join(written)}")
    if "tokenizer.json" not in written:
        print("note: no tokenizer.json in the source directory, so AutoTokenizer will not load this export")
    return 0
