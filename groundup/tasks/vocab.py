"""Identifier vocabularies for generated repositories, split into training and held-out.

Design choices:
- Every identifier a generated repository introduces (package, modules, functions, classes,
  parameters, locals, attributes, test names) contains a noun from this list. The list is
  split once, by a stable hash of each word, into a training part and a held-out part, so a
  held-out task is written in words the fine-tuned model has never seen in a task: it cannot
  pass by remembering names, only by reading the code.
- Verbs that carry a function's meaning (`count_`, `total_`, ...) belong to the templates and
  are shared by both splits, the way a programmer's vocabulary of verbs is.
- Nouns that would shadow a builtin, a keyword or a standard-library module are filtered out:
  a package called `random` would make `import random` in the tests resolve to it.
- Training repositories also use made-up words (`pseudo_word`: "brelo", "tamsik"), most of
  their names in fact. With ~260 training nouns a model learns the nouns themselves: the 30M
  model of a gpu speedrun wrote "The test is for window" about a held-out test of `medal`
  (docs/08). An endless supply of names it cannot have seen leaves one way to get them right:
  copy them from the context -- the skill every held-out task needs.
"""

from __future__ import annotations

import builtins
import keyword
import sys
import zlib

_WORDS = """
acorn acre anchor ant apple arrow axle badge bagel banner barn barrel basket beacon bean bee
bell berry bird blade block board boat bolt bone book boot booth bottle boulder bowl box
bracket branch bread brick bridge brush bucket bundle button cabin cable cake camera candle
cane canvas cap car card carpet cart castle cave cedar chain chair chalk channel chapter charm
cherry chest chip circle clay cliff clock cloud coat coin comet cone coral cord corner cottage
crab crate crayon crow crown cube cup curtain cushion dart deck deer desk diamond dial dish
dock dome door dove dragon drawer drum duck dune eagle egg elm engine falcon feather fence
fern field fig flag flame flask fleet flower foam forest fork fountain frame frog garden gate
gear gem glove goat grape guitar gull hammer harbor harp hat hawk helmet hill hinge hive hook
horn horse island jacket jar jet jewel kayak kettle kite knot ladder lake lamb lamp lantern
leaf ledger lemon lens lever lid lily lion loaf locket lodge log magnet maple marble market
mask mast meadow medal melon meter mint mirror moon moth mountain mug mule nail needle nest
net nugget nut oak oar ocean olive orange orbit oven owl paddle pail palm panel parcel path
peach pear pearl pebble pen pencil pepper piano pig pillow pin pine pipe planet plank plate
plow plum pocket pond portal pot pump puppet quill quilt rabbit raft rail rainbow raven reed
ribbon ring river robin rock rocket roof root rope rose rug saddle sail salt sand satchel
scarf scroll seal seed shell shield ship shoe silk sketch sled sock sofa soup spoon star
stone stool storm stove stream sugar summit sun swan table tack tape teapot tent thread
ticket tiger tile timber toad torch tower toy track trail tray tree trophy trumpet tub tulip
tunnel turtle urn valley van vase velvet vine violin wagon wallet wand wasp wave web whale
wheel whistle wick willow window wing wire wolf worm wreath yacht yak yarn zebra
""".split()


def plural(word: str) -> str:
    if word.endswith(("s", "x", "ch", "sh")):
        return word + "es"
    if word.endswith("y") and word[-2] not in "aeiou":
        return word[:-1] + "ies"
    return word + "s"


def camel(word: str) -> str:
    return "".join(part.capitalize() for part in word.split("_"))


def _usable(word: str) -> bool:
    taken = set(dir(builtins)) | set(sys.stdlib_module_names) | {"self", "tests", "test"}
    return all(w not in taken and not keyword.iskeyword(w) for w in (word, plural(word)))


NOUNS: list[str] = sorted({w for w in _WORDS if _usable(w)})


def is_heldout(word: str) -> bool:
    """A stable 1-in-5 split: the same on every machine and Python version."""
    return zlib.crc32(word.encode()) % 5 == 0


TRAIN_NOUNS: list[str] = [w for w in NOUNS if not is_heldout(w)]
HELDOUT_NOUNS: list[str] = [w for w in NOUNS if is_heldout(w)]


_ONSETS = ("b c d f g h j k l m n p r s t v w z bl br cl cr dr fl fr gl gr pl pr sk sl sn sp "
           "st tr".split())
_VOWELS = "a e i o u a e i o".split()     # u half as often
_CODAS = ("", "", "", "n", "r", "l", "s", "t", "m", "k")
_HELDOUT_FORMS = {f for w in HELDOUT_NOUNS for f in (w, plural(w))}   # never made up


def pseudo_word(rng) -> str:
    """A pronounceable made-up word of two or three syllables, usable as an identifier."""
    while True:
        syllables = 2 if rng.random() < 0.75 else 3
        w = "".join(rng.choice(_ONSETS) + rng.choice(_VOWELS) + rng.choice(_CODAS)
                    for _ in range(syllables))
        if 4 <= len(w) <= 9 and _usable(w) and not ({w, plural(w)} & _HELDOUT_FORMS):
            return w


def nouns_for(split: str) -> list[str]:
    if split == "train":
        return TRAIN_NOUNS
    if split == "heldout":
        return HELDOUT_NOUNS
    raise ValueError(f"unknown split {split!r}: use 'train' or 'heldout'")
