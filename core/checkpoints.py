"""Comparing a checkpoint's tensors with a model's: the one check every loader reports through."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence


@dataclass(frozen=True)
class KeyMismatch:
    """How a state dict differs from a model's: keys it lacks, keys it has in excess, tensors of the wrong shape.

    Attributes:
        missing, unexpected: sorted key names.
        misshaped: sorted `"key: expected [..], found [..]"` descriptions.
    """

    missing: list[str]
    unexpected: list[str]
    misshaped: list[str]

    def lines(self, *, unexpected: bool = True) -> list[str]:
        """One line per kind of problem, naming every key (`unexpected=False` leaves the excess keys out)."""
        lines = []
        if self.missing:
            lines.append(f"missing keys ({len(self.missing)}): " + ", ".join(self.missing))
        if self.misshaped:
            lines.append(f"mis-shaped tensors ({len(self.misshaped)}):\n    " + "\n    ".join(self.misshaped))
        if unexpected and self.unexpected:
            lines.append(f"unexpected keys ({len(self.unexpected)}): " + ", ".join(self.unexpected))
        return lines


def compare_shapes(expected: Mapping[str, Sequence[int]], found: Mapping[str, Sequence[int]]) -> KeyMismatch:
    """Compare the tensor shapes a model expects with those a checkpoint holds, key by key."""
    return KeyMismatch(
        missing=sorted(set(expected) - set(found)),
        unexpected=sorted(set(found) - set(expected)),
        misshaped=[f"{k}: expected {list(expected[k])}, found {list(found[k])}"
                   for k in sorted(set(expected) & set(found)) if tuple(found[k]) != tuple(expected[k])],
    )
