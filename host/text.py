"""Small rules for words a person reads, shared by every module that prints."""
from __future__ import annotations


def plural(n: int, word: str, many: str = "") -> str:
    """`1 device`, `3 devices`, `0 devices`; `many` for an irregular plural."""
    return f"{n} {word if n == 1 else (many or word + 's')}"
