"""What every checkpoint loader shares: fetching a hub repo, and comparing a checkpoint's tensors with a model's
(the one check every loader reports through)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Mapping, Sequence

HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")  # `owner/name`, as a hub repo is named


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


def hub_snapshot(repo_id: str, patterns: Sequence[str]) -> str:
    """The local folder of the hub repo `repo_id` with its files matching `patterns` (fetched, or found in the hub
    cache); FileNotFoundError saying why when there is none."""
    hint = "pass a local folder or an fsspec URL instead (e.g. a copy of the repo made where there is network)"
    try:
        from huggingface_hub import snapshot_download
    except ImportError:
        raise FileNotFoundError(f"{repo_id!r} is not a local folder and huggingface_hub is missing; {hint}") from None
    try:
        return snapshot_download(repo_id, allow_patterns=list(patterns))
    except Exception as err:  # network, auth, missing repo: all end the same way for the caller
        raise FileNotFoundError(
            f"{repo_id!r} is not a local folder and could not be fetched from the hub ({type(err).__name__}: {err}); "
            f"{hint}"
        ) from None
