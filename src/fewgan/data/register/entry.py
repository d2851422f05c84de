"""`add_dataset`: check NAME and the options, scan the folder, build the entry, render it as commented
YAML and append it to `params/datasets.yaml` atomically (the file's bytes stay a prefix); the file is re-read
and validated, and the original put back on any failure."""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path
from typing import Any

from fewgan.data.register.findings import (CLASS_CHOICES, MODES, DatasetAddError, Report, _comment, _show,
                                           _yaml_key, _yaml_str)
from fewgan.data.register.location import _check_folder, _locate
from fewgan.data.register.scan import _landmark_files, _scan
from fewgan.data.schema import RESOLUTIONS, DatasetConfigError, resolve_entry, validate_entry
from fewgan.io import atomic_path, read_yaml
from fewgan.names import InvalidNameError, check_name
from fewgan.params import dataset_entry

WHERE = "fewgan dataset add NAME"
#: refused files named one per comment line in the entry (all of them are in the printed report)
MAX_LISTED = 20


# --------------------------------------------------------------------------------------------------
# the entry text
# --------------------------------------------------------------------------------------------------
def _line(indent: int, key: str, value: str, comment: str, col: int = 34) -> str:
    text = f"{' ' * indent}{key}: {value}" if value != "" else f"{' ' * indent}{key}:"
    return f"{text.ljust(col - 1)} # {_comment(comment)}\n" if comment else text + "\n"


def _flow(value: Any) -> str:
    if isinstance(value, str):
        return _yaml_str(value)
    if isinstance(value, list):
        return "[" + ", ".join(_flow(v) for v in value) + "]"
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


MODE_MEANING = {"face": "FFHQ-style face crop from landmarks", "center": "largest centred square, resized",
                "pad": "padded to a square with `background`, resized",
                "none": "already aligned squares, resized only; non-square images refused"}


def _entry_text(report: Report, entry: dict, when: str) -> str:
    r = report
    refused = ", ".join(f"{k} {v}" for k, v in r.refused_by_reason.items()) or "none"
    fmts = ", ".join(f"{k} {v}" for k, v in r.formats.items()) or "none"
    lines = ["\n" + f"# ---- {_comment(r.name)}: added by `fewgan dataset add` on {when} ".ljust(104, "-") + "\n"]
    lines.append(f"# from folder {_comment(str(r.path))} (given as {_comment(r.given_path)})\n")
    lines.append(f"# found {r.files_found} file(s): {len(r.accepted)} {'faces' if r.mode == 'face' else 'images'} "
                 f"accepted, {len(r.refused)} refused "
                 f"({_comment(refused)})" + (f", {len(r.other)} landmark file(s)" if r.other else "") + "\n")
    w, h = r.sizes.get("width"), r.sizes.get("height")
    size = (f"; width {w[0]}..{w[2]} px (median {w[1]}), height {h[0]}..{h[2]} px (median {h[1]})"
            if r.sizes else "")
    lines.append(f"# formats {fmts}{size}\n")
    if r.classes:
        lines.append("# classes (sub-folders, accepted images): "
                     + _comment(", ".join(f"{k} {v}" for k, v in r.classes.items()))
                     + f" ({_comment(r.class_note)})\n")
    shown = sorted(r.refused, key=lambda f: (f.reason, f.file))
    for f in shown[:MAX_LISTED]:
        face = f" face {f.face}" if f.face is not None else ""
        lines.append(f"#   refused {f.reason}: {_comment(f.file)}{face}\n")
    if len(shown) > MAX_LISTED:
        lines.append(f"#   ... and {len(shown) - MAX_LISTED} more refused file(s)\n")
    lines.append(f"{_yaml_key(r.name)}:\n")
    lines.append(_line(2, "description", _yaml_str(entry["description"]), "free text for the report"))
    lines.append(_line(2, "domain", _yaml_str(entry["domain"]), "what the images show (free text)"))
    src = entry["source"]
    lines.append(_line(2, "source", "", "where the images are"))
    lines.append(_line(4, "kind", "folder", "a folder, searched recursively (hidden files skipped)"))
    root_meaning = ("relative to the shared real-image folder (FEWGAN_SHARED_DATA, else shared_data_root)"
                    if src["root"] == "shared_data" else "relative to the repository root")
    lines.append(_line(4, "root", src["root"], root_meaning))
    lines.append(_line(4, "path", _yaml_str(src["path"]), "the image folder, relative to root"))
    lines.append(_line(2, "mode", entry["mode"], MODE_MEANING[entry["mode"]]))
    if "classes" in entry:
        lines.append(_line(2, "classes", "{from: subfolder}", "an image's class = its first sub-folder"))
    if "landmarks" in entry:
        lmk = entry["landmarks"]
        lines.append(_line(2, "landmarks", "", "face landmarks for the alignment"))
        lines.append(_line(4, "format", lmk["format"], "celeba | dlib_xml | json"))
        lines.append(_line(4, "path", _flow(lmk["path"]), "relative to the image folder"))
        if "missing_images" in lmk:
            lines.append(_line(4, "missing_images", lmk["missing_images"],
                               f"the file names {len(r.landmarks['unknown_names'])} image(s) not in the folder"))
    if entry.get("detector"):
        lines.append(_line(2, "detector", entry["detector"], "face detector plugin for photos without landmarks"))
    lines.append(_line(2, "resolution", str(entry["resolution"]), f"output side in px; {r.resolution_note}"))
    lines.append(_line(2, "shots", str(entry["shots"]), f"images in the few-shot subset (train + test); {r.shots_note}"))
    lines.append(_line(2, "min_images", str(entry["min_images"]),
                       "curate/split stop with an error below this many usable images"))
    return "".join(lines)


# --------------------------------------------------------------------------------------------------
# the command
# --------------------------------------------------------------------------------------------------
def add_dataset(name: str, path: str | os.PathLike, *, mode: str = "center", resolution: int | None = None,
                shots: int | None = None, landmarks: Any = None, landmarks_format: str | None = None,
                detector: str | None = None, description: str | None = None, domain: str | None = None,
                classes: str = "auto", params_dir: Path = Path("params"), dry_run: bool = False,
                now: dt.datetime | None = None) -> Report:
    """Scan the image folder `path`, and (unless `dry_run`) append an entry `name` to
    `params_dir/datasets.yaml`. Returns the findings; raises DatasetAddError (with `.report` when the folder
    was scanned) when the folder cannot be registered. `classes`: auto (class-conditional from sub-folders when
    the folder holds two or more sub-folders and no loose images), subfolder, or none."""
    if classes not in CLASS_CHOICES:
        raise DatasetAddError(f"--classes {classes!r}: choose one of {', '.join(CLASS_CHOICES)}")
    try:
        check_name(name, "dataset", WHERE)
    except InvalidNameError as e:
        raise DatasetAddError(f"{e}; choose another NAME") from e
    params_dir = Path(params_dir)
    dfile = params_dir / "datasets.yaml"
    try:
        original = dfile.read_bytes()
        existing = read_yaml(dfile)
    except FileNotFoundError:
        raise DatasetAddError(f"{dfile}: not found; run the command in the repository root or give "
                              "--params-dir") from None
    except Exception as e:  # yaml errors, bad UTF-8
        raise DatasetAddError(f"{dfile}: not valid YAML ({e}); fix it before adding a dataset") from e
    if existing is None:
        existing = {}
    if not isinstance(existing, dict):
        raise DatasetAddError(f"{dfile}: must be a mapping of dataset names to entries, got "
                              f"{type(existing).__name__}; fix the file first")
    if name in existing:
        raise DatasetAddError(f"{dfile}: a dataset named {name!r} already exists; pick another NAME "
                              f"(e.g. {name}_2) or edit that entry in {dfile} by hand")
    same_case = [k for k in existing if isinstance(k, str) and k.lower() == name.lower()]
    if same_case:  # data/curated/<name> would collide on case-insensitive file systems
        raise DatasetAddError(f"{dfile}: dataset {name!r} differs only in letter case from the existing "
                              f"{same_case[0]!r}; pick another NAME")
    if mode not in MODES:
        raise DatasetAddError(f"--mode {mode!r}: choose one of {', '.join(MODES)}")
    if resolution is not None and resolution not in RESOLUTIONS:
        raise DatasetAddError(f"--resolution {resolution}: choose one of {', '.join(map(str, RESOLUTIONS))}")
    if shots is not None and (not isinstance(shots, int) or shots < 2):
        raise DatasetAddError(f"--shots {shots!r}: must be an integer of at least 2 (or leave it out: all images)")
    if detector is not None and mode != "face":
        raise DatasetAddError(f"--detector {detector}: only face mode uses a detector; drop it or use --mode face")
    repo = params_dir.resolve().parent
    given = str(path)
    path = Path(path)
    _check_folder(path, repo)
    folder = path.resolve()

    lm = _landmark_files(landmarks, landmarks_format, folder)
    if mode == "face" and lm is None and detector is None:
        raise DatasetAddError(
            "--mode face needs face landmarks: give --landmarks FILE (a file inside the image folder, "
            "format celeba .txt, dlib_xml .xml or json .json) or --detector dlib (needs "
            "`pip install 'fewgan[detect]'`); or use --mode center, pad or none")
    if mode != "face" and lm is not None:
        raise DatasetAddError("--landmarks: only face mode uses landmarks; drop it or use --mode face")

    source, problem = _locate(folder, repo, params_dir)
    report = Report(name=name, path=folder, given_path=given, mode=mode, resolution=resolution,
                    resolution_note="", shots=shots, shots_note="", source=source, datasets_file=dfile,
                    dry_run=dry_run)
    if problem:
        report.problems.append(problem)
    for other, e in existing.items():
        src = e.get("source") if isinstance(e, dict) else None
        if (isinstance(src, dict) and src.get("kind") == "folder" and source["path"] is not None
                and src.get("root", "repo") == source["root"] and src.get("path") == source["path"]):
            report.warnings.append(f"dataset {other!r} in {dfile} already reads this folder "
                                   f"(mode {e.get('mode')}, resolution {e.get('resolution')})")

    # the entry with every default filled in (curate's own view), for the scan
    probe = {"source": {"kind": "folder", "path": source["path"] or "."}, "mode": mode,
             "resolution": resolution or RESOLUTIONS[0]}
    if lm:
        probe["landmarks"] = {"format": lm[0], "path": lm[1] if len(lm[1]) > 1 else lm[1][0]}
    if detector:
        probe["detector"] = detector
    try:
        resolved = resolve_entry({"seed": 0, "datasets": {name: dataset_entry(probe, params_dir)}}, name)
    except DatasetConfigError as e:
        raise DatasetAddError(str(e)) from e
    _scan(report, resolved, folder, lm, detector, resolution)

    accepted = len(report.accepted)
    min_images = int(dataset_entry({}, params_dir)["min_images"])  # params/dataset_defaults.yaml
    if report.resolution is None:
        report.problems.append(f"{folder}: no usable image found (see the refused files); nothing to register")
    elif accepted < min_images:
        report.problems.append(f"{folder}: only {accepted} image(s) accepted; curate needs at least "
                               f"min_images={min_images}: add images or fix the refused ones")
    if shots is None:
        report.shots = accepted
        report.shots_note = f"default: all {accepted} accepted images"
    else:
        report.shots_note = f"given; {accepted} accepted"
        if shots > accepted:
            report.problems.append(f"--shots {shots}: only {accepted} image(s) accepted; give at most {accepted}")
        if shots < min_images:
            report.problems.append(f"--shots {shots}: below min_images={min_images}; give at least {min_images}")
    if report.problems:
        if dry_run:
            return report
        raise DatasetAddError("cannot register " + _show(str(folder)) + ":\n  - " + "\n  - ".join(report.problems)
                              + "\nNothing was written.", report)

    entry: dict[str, Any] = {
        "description": description if description is not None else
        f"{accepted} {'faces' if mode == 'face' else 'images'} from {folder.name} (registered by fewgan dataset add)",
        "domain": domain if domain is not None else "unknown (edit me)",
        "source": {"kind": "folder", "root": source["root"], "path": source["path"]},
        "mode": mode,
    }
    loose = report.classes.get("(top level)", 0)
    if classes == "subfolder" and (not report.classes or loose):
        why = (f"{loose} accepted image(s) lie directly in the folder and would belong to no class: move them into "
               "a class sub-folder" if loose else "the folder has fewer than two sub-folders with accepted images")
        raise DatasetAddError(f"--classes subfolder: {_show(str(folder))}: {why}. Nothing was written.", report)
    if classes == "subfolder" or (classes == "auto" and report.classes and not loose):
        entry["classes"] = {"from": "subfolder"}
        report.class_note = ("used as classes: a model that supports classes (BigGAN) trains on them, evaluate "
                             "reports each class too; --classes none trains one unconditional dataset")
    elif report.classes:
        report.class_note = ("not used as classes: " + ("--classes none" if classes == "none" else
                             f"{loose} image(s) lie outside the sub-folders; move them into one and run again, "
                             "or add classes: {from: subfolder} by hand (curate then skips them)")
                             + "; trained as one dataset")
    if lm:
        entry["landmarks"] = {"format": lm[0], "path": lm[1] if len(lm[1]) > 1 else lm[1][0]}
        if report.landmarks and report.landmarks["unknown_names"]:
            entry["landmarks"]["missing_images"] = "warn"
    if detector:
        entry["detector"] = detector
    entry.update(resolution=report.resolution, shots=report.shots, min_images=min_images)
    try:
        complete = dataset_entry(entry, params_dir)
        validate_entry(name, complete)
        resolve_entry({"seed": 0, "datasets": {name: complete}}, name)
    except DatasetConfigError as e:
        raise DatasetAddError(f"the entry built for {name!r} is invalid ({e}); this is a bug in "
                              "fewgan.data.register: report it", report) from e
    report.entry = entry
    when = (now or dt.datetime.now(dt.timezone.utc)).strftime("%Y-%m-%dT%H:%M:%SZ")
    report.text = _entry_text(report, entry, when)
    if dry_run:
        return report
    _append(dfile, original, report.text, existing, name, entry, params_dir)
    report.written = True
    return report


def _append(dfile: Path, original: bytes, text: str, before: dict, name: str, entry: dict,
            params_dir: Path) -> None:
    """Append `text` atomically; re-read and check the whole file; put the original back on failure."""
    target = dfile.resolve()  # a symlinked params file is edited in place, not replaced by a file
    sep = b"" if original == b"" or original.endswith(b"\n") else b"\n"
    new = original + sep + text.encode("utf-8")

    def write(data: bytes) -> None:
        with atomic_path(target) as tmp:
            with open(tmp, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())

    if target.read_bytes() != original:
        raise DatasetAddError(f"{dfile} changed while the folder was scanned; run the command again")
    write(new)
    try:
        after = read_yaml(target)
        if not isinstance(after, dict) or name not in after:
            raise DatasetAddError(f"{dfile}: the new entry {name!r} is not in the file after writing")
        complete = dataset_entry(after[name], params_dir)
        validate_entry(name, complete)
        resolve_entry({"seed": 0, "datasets": {name: complete}}, name)
        if after[name] != entry or {k: v for k, v in after.items() if k != name} != before:
            raise DatasetAddError(f"{dfile}: after appending, the file does not read back as before plus "
                                  f"the entry {name!r}")
    except Exception as e:
        write(original)
        if isinstance(e, DatasetAddError):
            raise DatasetAddError(f"{e}; the original file was restored", None) from e
        raise DatasetAddError(f"{dfile}: the file with the new entry does not read back or validate ({e}); "
                              "the original file was restored: report this as a bug", None) from e
