"""brief(): the one way a user value goes into an error message."""
import time

import numpy as np

from evo_msa.errors import brief


def _laughs(levels: int = 9):
    value = ["lol"] * 9
    for _ in range(levels - 1):
        value = [value] * 9  # 9**9 strings when written out in full
    return value


def test_brief_is_short_one_line_and_cheap_for_huge_values():
    loop = []
    loop.append(loop)
    huge = [_laughs(), 10 ** 100_000, "x" * 10 ** 7, {i: [i] * 10 for i in range(10 ** 5)},
            set(range(10 ** 5)), b"\0" * 10 ** 7, bytearray(10 ** 6), np.zeros((1000, 1000)),
            np.array(_laughs(4), dtype=object), "two\nlines", loop, object()]
    start = time.perf_counter()
    texts = [brief(v) for v in huge]
    assert time.perf_counter() - start < 1.0
    for text in texts:
        assert len(text) <= 60 and "\n" not in text, text


def test_brief_keeps_small_values_readable():
    assert brief("depth") == "'depth'"
    assert brief(3) == "3" and brief(1.5) == "1.5" and brief(None) == "None"
    assert brief([1, 2]) == "[1, 2]"
    assert brief({"a": 1}) == "{'a': 1}"
    assert brief(list(range(100))).startswith("[0, 1, 2, 3")
    assert brief("y" * 100, limit=20) == "'" + "y" * 16 + "..."
