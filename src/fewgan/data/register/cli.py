"""`fewgan dataset add NAME PATH`: the argument parser, and the report printed from the findings."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any, Sequence

from fewgan.data.register.entry import MODE_MEANING, add_dataset
from fewgan.data.register.findings import (CLASS_CHOICES, LANDMARK_FORMATS, MODES, DatasetAddError, Report,
                                           _printable, _show)
from fewgan.data.schema import RESOLUTIONS


def format_report(report: Report) -> str:
    r = report
    out = [f"fewgan dataset add {_show(r.name)}: folder {_show(str(r.path))} (given as {_show(r.given_path)})"]
    if r.source.get("root"):
        out.append(f"  source: root {r.source['root']}, path {_show(r.source['path'])}: {r.source['how']}")
    else:
        out.append(f"  source: {r.source['how']}")
    out.append(f"  files found: {r.files_found}; decodable images: {r.decoded}; accepted: {len(r.accepted)}"
               f" {'faces' if r.mode == 'face' else 'images'}; refused: {len(r.refused)}"
               + (f"; landmark files: {len(r.other)}" if r.other else ""))
    if r.formats:
        out.append("  formats (by content): " + ", ".join(f"{k} {v}" for k, v in r.formats.items()))
    if r.sizes:
        w, h = r.sizes["width"], r.sizes["height"]
        out.append(f"  sizes (decodable images, px): width min {w[0]} / median {w[1]} / max {w[2]}; "
                   f"height min {h[0]} / median {h[1]} / max {h[2]}")
    if r.classes:
        out.append("  classes (sub-folders, accepted images): "
                   + ", ".join(f"{_show(k)} {v}" for k, v in r.classes.items())
                   + f" ({r.class_note})")
    if r.landmarks:
        lm = r.landmarks
        out.append(f"  landmarks: {lm['format']} {', '.join(_show(f) for f in lm['files'])}: names {lm['names']} "
                   f"image(s); images without landmarks: {len(lm['uncovered'])}"
                   + (" (" + ", ".join(_show(u) for u in lm['uncovered'][:20]) + ")" if lm['uncovered'] else "")
                   + f"; names not in the folder: {len(lm['unknown_names'])}")
    out.append(f"  mode: {r.mode} ({MODE_MEANING[r.mode]})")
    out.append(f"  resolution: {r.resolution if r.resolution is not None else '-'} ({r.resolution_note})")
    out.append(f"  shots: {r.shots if r.shots is not None else '-'} ({r.shots_note})")
    if r.refused:
        out.append(f"  refused ({', '.join(f'{k} {v}' for k, v in r.refused_by_reason.items())}):")
        for f in sorted(r.refused, key=lambda f: (f.reason, f.file)):
            face = f" face {f.face}" if f.face is not None else ""
            detail = f.detail
            prefix = f"{f.file}: "
            if detail.startswith(prefix):  # decode errors start with the file name
                detail = detail[len(prefix):]
            out.append(f"    {f.reason}: {_show(f.file)}{face}" + (f": {_printable(detail)}" if detail else ""))
    for f in r.other:
        out.append(f"  used, not an image: {_show(f.file)} ({f.detail})")
    for w in r.warnings:
        out.append(f"  warning: {w}")
    for p in r.problems:
        out.append(f"  PROBLEM: {p}")
    if r.problems:
        out.append("  not registered" + (" (dry run)" if r.dry_run else "") + ": fix the problems above")
    elif r.dry_run:
        out.append(f"  dry run: nothing written; {r.datasets_file} would get:")
        out.append(r.text.rstrip("\n"))
    elif r.written:
        out.append(f"  appended entry {_show(r.name)} to {r.datasets_file} (re-read and validated):")
        out.append(r.text.rstrip("\n"))
        out.append(f"  next: add {_show(r.name)} to experiment.datasets (params/base.yaml or a profile), run "
                   f"`fewgan params --profile P`, then `fewgan curate --dataset {r.name}`")
    return "\n".join(out)


def _cmd_add(args: argparse.Namespace) -> None:
    try:
        report = add_dataset(args.name, args.path, mode=args.mode, resolution=args.resolution, shots=args.shots,
                             landmarks=args.landmarks, landmarks_format=args.landmarks_format,
                             detector=args.detector, description=args.description, domain=args.domain,
                             classes=args.classes, params_dir=Path(args.params_dir), dry_run=args.dry_run)
    except DatasetAddError as e:
        if e.report is not None:
            print(format_report(e.report))
        print(f"fewgan dataset add: error: {e}", file=sys.stderr)
        raise SystemExit(2) from None
    print(format_report(report))
    if report.problems:  # a dry run that found problems
        raise SystemExit(2)


def register_cli(subparsers: Any) -> None:
    """Add `fewgan dataset add` to the `fewgan` argument parser's sub-commands."""
    p = subparsers.add_parser("dataset", help="manage the dataset registry (params/datasets.yaml)",
                              description="Manage the dataset registry, params/datasets.yaml.")
    dsub = p.add_subparsers(dest="dataset_command", required=True, metavar="<action>")
    a = dsub.add_parser(
        "add", help="check a folder of images and register it as a dataset",
        description="Check a folder of images the way curate reads it, report what it holds and every file "
                    "it will refuse, then append a commented entry to params/datasets.yaml.")
    a.add_argument("name", help="dataset name (letters, digits, '_', '.', '-')")
    a.add_argument("path", help="the folder of images (inside the repository or the shared real-image folder)")
    a.add_argument("--mode", choices=MODES, default="center",
                   help="face: FFHQ crop from landmarks; center: centre crop (default); pad: pad to square; "
                        "none: already aligned squares")
    a.add_argument("--resolution", type=int, choices=RESOLUTIONS, default=None,
                   help="output side (default: the largest power of two not above the smallest image)")
    a.add_argument("--shots", type=int, default=None, help="few-shot subset size (default: every accepted image)")
    a.add_argument("--landmarks", action="append", default=None, metavar="FILE",
                   help="face landmark file inside the folder (repeatable)")
    a.add_argument("--landmarks-format", choices=LANDMARK_FORMATS, default=None,
                   help="landmark file format (default: from the name: .txt celeba, .xml dlib_xml, .json json)")
    a.add_argument("--detector", default=None, help="face mode without landmarks: detector plugin (dlib)")
    a.add_argument("--classes", choices=CLASS_CHOICES, default="auto",
                   help="auto (default): classes from the sub-folders when there are two or more and no loose "
                        "images; subfolder: always (loose images are skipped); none: one unconditional dataset")
    a.add_argument("--description", default=None, help="free text for the report")
    a.add_argument("--domain", default=None, help="what the images show (free text)")
    a.add_argument("--params-dir", default="params", help="the params folder (default: params)")
    a.add_argument("--dry-run", action="store_true", help="report only, write nothing")
    a.set_defaults(fn=_cmd_add)


def main(argv: Sequence[str] | None = None) -> int:  # pragma: no cover - convenience
    ap = argparse.ArgumentParser(prog="fewgan")
    register_cli(ap.add_subparsers(dest="command", required=True))
    args = ap.parse_args(argv)
    args.fn(args)
    return 0
