"""What `fewgan dataset add` finds in a folder (`Report`, one `Finding` per file not accepted), the error
that stops a registration, the choices of its options, and the helpers that make a file name safe to
print or to write into YAML (never trust a file name)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

MODES = ("face", "center", "pad", "none")
LANDMARK_FORMATS = ("celeba", "dlib_xml", "json")
CLASS_CHOICES = ("auto", "subfolder", "none")


class DatasetAddError(ValueError):
    """`fewgan dataset add` cannot register the folder; the message names the file/option and what to do.
    `report` holds the findings when the folder was scanned before the refusal (else None)."""

    def __init__(self, message: str, report: "Report | None" = None):
        super().__init__(message)
        self.report = report


@dataclass
class Finding:
    """A file (POSIX path relative to PATH, as curate's manifest names it) that is not accepted."""

    file: str
    reason: str
    detail: str = ""
    face: int | None = None  # face mode: which face of the photo (None = the whole file)


@dataclass
class Report:
    name: str
    path: Path                      # the folder, resolved
    given_path: str                 # as typed
    mode: str
    resolution: int | None
    resolution_note: str
    shots: int | None
    shots_note: str
    source: dict[str, Any]          # {root, path, how}: what the entry says, and why
    files_found: int = 0            # every file under PATH, plus one per hidden or linked folder
    decoded: int = 0                # files that decode as images (duplicates by file bytes not decoded)
    accepted: list[str] = field(default_factory=list)   # output images (face mode: "file#face")
    refused: list[Finding] = field(default_factory=list)
    other: list[Finding] = field(default_factory=list)  # used but not images (the landmark files)
    formats: dict[str, int] = field(default_factory=dict)
    sizes: dict[str, tuple[int, int, int]] = field(default_factory=dict)  # width/height: (min, median, max)
    classes: dict[str, int] = field(default_factory=dict)  # accepted images per top-level sub-folder
    class_note: str = ""  # whether the entry uses those sub-folders as classes, and why
    landmarks: dict[str, Any] | None = None
    warnings: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # each one stops a registration (a dry run lists them)
    entry: dict[str, Any] | None = None
    text: str = ""                  # the text appended (or, in a dry run, that would be appended)
    datasets_file: Path = Path("params/datasets.yaml")
    dry_run: bool = False
    written: bool = False

    @property
    def refused_by_reason(self) -> dict[str, int]:
        return dict(sorted(Counter(f.reason for f in self.refused).items()))


# --------------------------------------------------------------------------------------------------
# small text helpers: never trust a file name
# --------------------------------------------------------------------------------------------------
def _escape(s: str) -> str:
    """`s` with every character that is not printable (or is a quote/backslash) escaped; one line."""
    out = []
    for c in s:
        if c == "\\":
            out.append("\\\\")
        elif c == '"':
            out.append('\\"')
        elif c.isprintable() and not 0xD800 <= ord(c) <= 0xDFFF:
            out.append(c)
        elif ord(c) <= 0xFFFF:
            out.append(f"\\u{ord(c):04x}")
        else:
            out.append(f"\\U{ord(c):08x}")
    return "".join(out)


def _yaml_str(s: str) -> str:
    """A YAML double-quoted scalar for any string (escapes are YAML's: \\uXXXX, \\UXXXXXXXX)."""
    return f'"{_escape(s)}"'


def _printable(s: str) -> str:
    """`s` with only its non-printable characters escaped (for messages on the terminal)."""
    return "".join(c if c.isprintable() and not 0xD800 <= ord(c) <= 0xDFFF else repr(c)[1:-1] for c in s)


def _yaml_key(name: str) -> str:
    """`name` as a mapping key: plain when YAML reads it back as that string (not 123, 1.5, null, on)."""
    try:
        plain_ok = yaml.safe_load(f"{name}: 0") == {name: 0}
    except yaml.YAMLError:
        plain_ok = False
    return name if plain_ok else _yaml_str(name)


def _show(s: str) -> str:
    """A file name for the terminal: as is when plain, else repr (control characters, odd spaces)."""
    return s if s and s.isprintable() and s == s.strip() and "'" not in s else repr(s)


def _comment(s: str) -> str:
    """Text safe inside a one-line YAML comment (no line breaks, no control characters)."""
    return _escape(s).replace('\\"', '"')


def _rel(path: Path, root: Path) -> str | None:
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return None
