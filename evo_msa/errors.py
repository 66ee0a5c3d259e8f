"""One error type for bad user input: the CLI prints it as one line and exits 2."""
from __future__ import annotations

import reprlib
from itertools import islice


class UserError(Exception):
    """Bad input from the user (file, field, CLI value). The message is one line that names
    the file/field and says what was expected."""


class _Brief(reprlib.Repr):
    """reprlib with small limits that never builds a full repr first: a YAML alias bomb or a
    huge list costs as much to describe as a short one."""

    _PLAIN = (float, complex, bool, type(None))

    def __init__(self):
        super().__init__()
        self.maxlevel = 3
        self.maxtuple = self.maxlist = self.maxarray = self.maxdeque = 4
        self.maxdict = self.maxset = self.maxfrozenset = 4
        self.maxstring = self.maxlong = self.maxother = 40

    def repr_int(self, x, level):
        if x.bit_length() > 128:  # str() of a huge int is slow (and refused past 4300 digits)
            return f"<{x.bit_length()}-bit int>"
        return super().repr_int(x, level)

    def repr_bytes(self, x, level):
        return self._cut(repr(bytes(x[:self.maxstring])), len(x) > self.maxstring)

    def repr_bytearray(self, x, level):
        return f"bytearray({self.repr_bytes(x, level)})"

    # reprlib sorts every key of a dict or set before showing the first few: not here
    def repr_dict(self, x, level):
        if not x:
            return "{}"
        if level <= 0:
            return "{...}"
        items = [f"{self.repr1(k, level - 1)}: {self.repr1(v, level - 1)}"
                 for k, v in islice(x.items(), self.maxdict)]
        return "{" + ", ".join(items) + (", ..." if len(x) > self.maxdict else "") + "}"

    def repr_set(self, x, level):
        if not x:
            return "set()"
        if level <= 0:
            return "{...}"
        items = [self.repr1(v, level - 1) for v in islice(x, self.maxset)]
        return "{" + ", ".join(items) + (", ..." if len(x) > self.maxset else "") + "}"

    def repr_frozenset(self, x, level):
        return f"frozenset({self.repr_set(x, level)})" if x else "frozenset()"

    def repr_instance(self, x, level):
        if isinstance(x, str):  # subclasses, e.g. numpy.str_
            return self.repr_str(str(x[:self.maxstring + 1]), level)
        if isinstance(x, (bytes, bytearray)):
            return self.repr_bytes(x, level)
        shape = getattr(x, "shape", None)
        if shape == () and getattr(getattr(x, "dtype", None), "kind", "") == "O":
            return f"array({self.repr1(x.item(), level - 1)})"  # numpy repr shows all of it
        if isinstance(shape, tuple) and shape and hasattr(x, "dtype"):  # numpy/torch arrays
            return f"<{type(x).__name__} {x.dtype} {shape}>"
        if isinstance(x, self._PLAIN) or type(x).__module__ in ("datetime", "numpy"):
            return self._cut(repr(x), False)
        return f"<{type(x).__name__}>"  # its own repr could cost anything

    def _cut(self, text: str, more: bool) -> str:
        if len(text) > self.maxother:
            return text[:self.maxother - 3] + "..."
        return text + ("..." if more else "")


_BRIEF = _Brief()


def brief(value, limit: int = 60) -> str:
    """A repr of a user value for an error message, at most `limit` characters and one line,
    cheap whatever the value's size (a repr cut afterwards would build all of it first)."""
    try:
        text = _BRIEF.repr(value)
    except Exception:  # noqa: BLE001 - describing a value must not fail
        text = f"<{type(value).__name__}>"
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit - 3] + "..."


def did_you_mean(word, known) -> str:
    """' (did you mean 'x'?)' for the closest of `known` to a mistyped `word` (difflib), or ''
    when none is close: appended to an "unknown ..." message."""
    import difflib

    if not isinstance(word, str):
        return ""
    close = difflib.get_close_matches(word, [k for k in known if isinstance(k, str)], n=1,
                                      cutoff=0.6)
    return f", did you mean {close[0]!r}?" if close else ""
