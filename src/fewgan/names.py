"""Names that become paths: dataset, model and profile names.

Every name that ends up in a path (data/curated/<dataset>, runs/<dataset>/<model>/, params/profiles/<p>.yaml)
must match NAME_PATTERN. The params schema, the CLI and every function that turns a name into a path check
it, so neither engine nor a direct CLI call can write outside the project or create a folder named
`<script>`.
"""

from __future__ import annotations

import re

#: one documented rule for every name (README, docs/DESIGN.md)
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
NAME_RULE = ("1-64 characters from A-Z a-z 0-9 '_' '.' '-', starting with a letter or digit, "
             "and no '..'")
_NAME_RE = re.compile(NAME_PATTERN)
#: what a schema forbids besides NAME_PATTERN: "..", and the newline that a pattern's "$" lets through at the end
NAME_FORBIDDEN = r"\.\.|\n"


class InvalidNameError(ValueError):
    """A dataset/model/profile name breaks NAME_RULE; the message names where it came from."""


def is_valid_name(name: object) -> bool:
    return isinstance(name, str) and bool(_NAME_RE.fullmatch(name)) and ".." not in name  # "$" lets "x\n" match


def check_name(name: object, kind: str, where: str) -> str:
    """Return `name` if it is a valid `kind` name (dataset, model, profile); else raise, naming `where`
    (a file and key such as "params/datasets.yaml: datasets", or a command-line option)."""
    if not is_valid_name(name):
        raise InvalidNameError(f"{where}: {kind} name {name!r} is not allowed: a name must be {NAME_RULE} "
                               f"(pattern {NAME_PATTERN})")
    return name  # type: ignore[return-value]
