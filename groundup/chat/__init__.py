"""The chat layer: conversations as tokens (our format), HF chat templates, tool-call parsing.

    from groundup.chat import render_conversation, render_prompt, parse_assistant, StreamParser
    from groundup.chat.template import load_chat_template, parse_hermes, parse_llama3

See docs/05-tool-calling.md.
"""

from groundup.chat.format import (StreamParser, parse_assistant, render_conversation, render_prompt,
                                  render_text, render_tool)
from groundup.chat.types import TextDelta, ToolCall, ToolCallEvent

__all__ = ["render_conversation", "render_prompt", "render_text", "render_tool", "parse_assistant",
           "StreamParser", "ToolCall", "TextDelta", "ToolCallEvent"]
