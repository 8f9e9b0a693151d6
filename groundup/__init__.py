"""groundup: a coding agent and every layer beneath it, built from the ground up.

Layers (lower never imports higher), see ../docs/ for the walkthrough:
    tokenizer, model -> engine, train -> chat -> providers -> agent, tasks -> cli
    mcp and rag stand beside the stack.
"""

__version__ = "0.1.0"
