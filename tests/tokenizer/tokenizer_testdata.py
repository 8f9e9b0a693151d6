"""Test data shared by the tokenizer tests (a module with a unique name, not conftest:
several test directories have a conftest.py)."""

# a varied text set for parity checks: code, prose, Unicode of every kind, odd whitespace
VARIED = [
    "def f(x):\n    return x ** 2  # square\n",
    "Hello, world! It's 2024; they'll've done it. I'M HERE, we're 'quoted'.",
    "naïve café — 日本語のテキスト、中文文本。한국어 텍스트",
    "emoji 😀👍🏽 family 👨‍👩‍👧‍👦 flags 🇫🇷🇯🇵",
    "combining: e\u0301 a\u0300\u0323 Z\u0351\u0352\u0353",
    "tabs\tand\r\nCRLF\r\n\r\n   \n\n\n      trailing   ",
    "nul\x00byte and \x01\x1f control \x7f chars \u2028 \u00a0 nbsp",
    "numbers 1234567890 3.14159 1e-10 0xFF 1_000_000",
    "<|begin_of_text|>user text with <|user|> and <|end_of_turn|> inside<|end_of_text|>",
    "<|endoftext|> <special> [MASK] plain",
    "    if x:\n        y = {'a': [1, 2, 3]}\n        print(f\"{y!r:>10}\")\n",
    "a" * 300 + " " * 100 + "\n" * 20,
    "",
    " ",
    "Ünïcödé ÀÉÎÕÜ ß ẞ ǅ ﬁ ﬀ Ⅻ ½ ²³ ٣٤٥ ๓",
]
