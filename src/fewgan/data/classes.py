"""Class labels of a dataset's images (params `datasets.<name>.classes`, documented in
params/dataset_defaults.yaml).

- `from: none`: no classes. Curate, split and their files are exactly as for a dataset without this key.
- `from: subfolder`: an image's class is the first folder of its path under the image folder
  (`afhq-stargan-v2/cat/flickr_cat_000001.jpg` -> `cat`); a file at the top of the folder has none.
- `from: csv`: a labels file (header `file,class`; `file` relative to the image folder, as the
  manifest's `source` column) names every image's class.

An image without a class is never silently dropped: curate writes it to the manifest as skipped with
reason `no_class` and a detail saying why. Class names are the labels as written (stripped of
surrounding blanks); the class -> index mapping used by training and evaluation is the sorted list of
the names present in the split (`class_index`), recorded in the split's summary.json.
"""

from __future__ import annotations

import csv
from pathlib import Path

from fewgan.data.schema import DatasetConfigError
from fewgan.io import safe_join

NO_CLASS = "no_class"
CSV_COLUMNS = ("file", "class")


class ClassLabels:
    """The class of each source file of one curate run (or no classes at all)."""

    def __init__(self, mode: str, labels: dict[str, str] | None = None, csv_path: Path | None = None,
                 csv_rel: str | None = None):
        self.mode = mode
        self.labels = labels or {}
        self.csv_path = csv_path
        self.csv_rel = csv_rel

    @property
    def enabled(self) -> bool:
        return self.mode != "none"

    def of(self, rel: str) -> tuple[str | None, str]:
        """(class, "") or (None, why the file has no class)."""
        if self.mode == "subfolder":
            parts = rel.split("/")
            if len(parts) < 2 or not parts[0].strip():
                return None, ("file at the top of the image folder; with classes.from: subfolder every image "
                              "must sit in a class sub-folder (e.g. cat/x.jpg)")
            return parts[0].strip(), ""
        if self.mode == "csv":
            c = self.labels.get(rel)
            if c is None:
                return None, f"not listed in the labels file {self.csv_rel} (classes.csv); add a row `{rel},<class>`"
            return c, ""
        return None, "dataset has no classes"

    def unused_rows(self, rels: list[str]) -> list[str]:
        """Labels-file rows naming no file of the source folder."""
        present = set(rels)
        return sorted(f for f in self.labels if f not in present)


def read_labels_csv(path: Path, where: str) -> dict[str, str]:
    """{file: class} from a labels CSV with header file,class. Errors name the file and line."""
    if not path.is_file():
        raise DatasetConfigError(f"labels file {path} not found ({where}); create it (header `file,class`) or "
                                 "fix classes.csv in params/datasets.yaml")
    with open(path, newline="", encoding="utf-8-sig") as f:
        reader = csv.DictReader(f)
        header = [h.strip() for h in (reader.fieldnames or [])]
        missing = [c for c in CSV_COLUMNS if c not in header]
        if missing:
            raise DatasetConfigError(f"{path}: labels file needs columns {list(CSV_COLUMNS)}, header is {header} "
                                     f"(missing {missing}; {where})")
        reader.fieldnames = header
        out: dict[str, str] = {}
        for i, row in enumerate(reader, start=2):
            file = (row.get("file") or "").strip().replace("\\", "/").removeprefix("./")
            cls = (row.get("class") or "").strip()
            if not file and not cls:
                continue  # blank line
            if not file or not cls:
                raise DatasetConfigError(f"{path}:{i}: empty {'file' if not file else 'class'} in row {row!r}")
            if file in out and out[file] != cls:
                raise DatasetConfigError(f"{path}:{i}: {file} is labelled both {out[file]!r} and {cls!r}")
            out[file] = cls
    if not out:
        raise DatasetConfigError(f"{path}: the labels file has no rows ({where})")
    return out


def class_labels(entry: dict, folder: Path) -> ClassLabels:
    """The ClassLabels of dataset entry `entry` whose images are in `folder`."""
    cfg = entry["classes"]
    mode = cfg["from"]
    if mode == "csv":
        path = safe_join(folder, cfg["csv"])
        labels = read_labels_csv(path, f"datasets.{entry['name']}.classes.csv")
        return ClassLabels(mode, labels, path, cfg["csv"])
    return ClassLabels(mode)


def class_index(names) -> dict[str, int]:
    """The stable class -> index mapping: sorted class names, 0..C-1."""
    return {c: i for i, c in enumerate(sorted(set(names)))}
