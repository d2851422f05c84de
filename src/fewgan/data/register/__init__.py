"""`fewgan dataset add NAME PATH`: check a folder of images, report what curate will make of it, and
append a commented entry for it to `params/datasets.yaml`.

What is checked, in order (the first failure stops with `DatasetAddError`, naming the file or option
and what to do):
1. NAME follows `fewgan.names` and is not already a key of `params/datasets.yaml`.
2. PATH exists, is a folder, is not inside a pipeline output folder (`OUTPUT_DIRS`, relative to the
   repository root = the folder holding `params/`) and holds none of them.
3. Face mode has landmarks (`--landmarks FILE`, inside PATH, because `landmarks.path` is relative to the
   image folder) or a detector plugin (`--detector dlib`); the landmark files are read with curate's
   readers.

Then the folder is scanned exactly as curate will scan it: `sources.list_files` lists the files,
`decode.decode_image` decodes them, `curate._crop` crops them, and duplicates are found with curate's
hashes and order (source-file sha256, then output pixels, then pHash). Nothing is dropped silently:
every file found is accepted or listed with a reason. The reasons are curate's manifest reasons
(`not_image`, `unreadable`, `truncated`, `decompression_bomb`, `unsupported_format`, `duplicate_exact`,
`duplicate_near`, `not_square`, `no_landmarks`, `no_face_detected`, `bad_landmarks`, `face_too_small`)
plus the files that `list_files` leaves out (`hidden_file`, `hidden_folder`, `symlink_outside`,
`symlink_folder`, `broken_symlink`, `not_regular_file`). Images smaller than the resolution are not
refused by curate outside face mode (it upsamples them); they are listed as warnings.

Where the entry says the folder is (`source.root` / `source.path`): curate refuses absolute paths and
paths escaping their root (`fewgan.io.safe_join`), so PATH must lie inside the shared real-image folder
(`source.root: shared_data`, preferred when both apply) or inside the repository (`source.root: repo`,
path relative to the repository root, which is curate's working directory under Snakemake/DVC).
A folder elsewhere is reported (dry run) or refused, with the command to copy it into the repository.

The entry is appended as text (the file's existing bytes stay a byte-for-byte prefix), written
atomically, re-read with `fewgan.io.read_yaml` and validated; on any failure the original file is put back.

The parts: `findings` (what a scan reports, the error, safe file-name text), `location` (where the
folder is and how the entry names it), `scan` (the options' files and curate's scan), `entry` (`add_dataset`:
the entry built, written and checked) and `cli` (the report printed, the `fewgan dataset add` parser).
"""

from fewgan.data.register.cli import format_report, main, register_cli
from fewgan.data.register.entry import MAX_LISTED, MODE_MEANING, WHERE, add_dataset
from fewgan.data.register.findings import (CLASS_CHOICES, LANDMARK_FORMATS, MODES, DatasetAddError, Finding,
                                           Report)
from fewgan.data.register.location import OUTPUT_DIRS, SUGGESTED_FOLDER
from fewgan.data.register.scan import LANDMARK_SUFFIXES, LISTING_REASONS, default_resolution

__all__ = [
    "CLASS_CHOICES", "DatasetAddError", "Finding", "LANDMARK_FORMATS", "LANDMARK_SUFFIXES", "LISTING_REASONS",
    "MAX_LISTED", "MODES", "MODE_MEANING", "OUTPUT_DIRS", "Report", "SUGGESTED_FOLDER", "WHERE", "add_dataset",
    "default_resolution", "format_report", "main", "register_cli",
]
