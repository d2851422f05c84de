"""Fingerprint of a finished run's outputs, to prove that a refactor changed no result.

    python bench/fingerprint.py DIR > after.json                  # DIR: a checkout after `make smoke`
    python bench/fingerprint.py --compare before.json after.json  # prints a table of what differs

Every file under DIR/data, DIR/runs and DIR/work gets one entry:
- `.pt`: the sha256 of every tensor (by key path) and the repr of every other value;
- `.png`: the sha256 of the decoded pixels (PNG encoders may differ in compression, not in pixels);
- `.json`, `.jsonl`, `.csv`: the parsed content with the volatile fields (wall/CPU seconds, memory, PIDs,
  timestamps, absolute paths, argv, package versions) replaced by "<volatile>";
- anything else: the sha256 of its bytes.
Outputs that are not deterministic by design (stage.json's timing, run.json's provenance) are thus compared
on their deterministic fields only.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import io
import json
import sys
from pathlib import Path
from typing import Any

#: keys whose values measure the machine or the moment, not the result
VOLATILE = {"wall_s", "it_per_s", "wall_seconds", "seconds", "seconds_per_iteration", "cpu_seconds",
            "peak_rss_mb", "peak_memory_mb", "started", "finished", "time", "timestamp", "pid", "argv",
            "host", "hostname", "python", "packages", "versions", "provenance", "cwd", "step_seconds",
            "created", "git", "platform", "cpu", "torch", "wall", "user_s", "sys_s", "max_rss_mb",
            "load_seconds", "feature_seconds", "elapsed", "date",
            "cached"}  # cached: whether the real features came from the cache depends on the job order


def _scrub(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: ("<volatile>" if k in VOLATILE or k.endswith("_seconds") or k.endswith("_s") else _scrub(v))
                for k, v in value.items()}
    if isinstance(value, list):
        return [_scrub(v) for v in value]
    if isinstance(value, str) and value.startswith("/"):
        return "<abs path>"
    return value


def _tensor_digest(obj: Any, prefix: str, out: dict) -> None:
    import torch

    if torch.is_tensor(obj):
        t = obj.detach().cpu().contiguous()
        raw = t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b""
        out[prefix] = f"{t.dtype}{tuple(t.shape)}:" + hashlib.sha256(raw).hexdigest()[:16]
    elif isinstance(obj, dict):
        for k, v in obj.items():
            if isinstance(k, str) and (k in VOLATILE or k.endswith("_seconds")):
                out[f"{prefix}.{k}"] = "<volatile>"
            else:
                _tensor_digest(v, f"{prefix}.{k}", out)
    elif isinstance(obj, (list, tuple)):
        for i, v in enumerate(obj):
            _tensor_digest(v, f"{prefix}[{i}]", out)
    else:
        out[prefix] = repr(_scrub(obj))


def digest(path: Path) -> Any:
    suffix = path.suffix
    if suffix == ".pt":
        import torch

        out: dict = {}
        _tensor_digest(torch.load(path, map_location="cpu", weights_only=True), "", out)
        return out
    if suffix == ".png":
        import numpy as np
        from PIL import Image

        with Image.open(path) as im:
            return hashlib.sha256(np.asarray(im).tobytes()).hexdigest()[:16]
    if suffix == ".json":
        return _scrub(json.loads(path.read_text(encoding="utf-8")))
    if suffix == ".jsonl":
        return [_scrub(json.loads(line)) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    if suffix == ".csv":
        rows = list(csv.DictReader(io.StringIO(path.read_text(encoding="utf-8"))))
        return [_scrub(r) for r in rows]
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16]


def fingerprint(root: Path) -> dict[str, Any]:
    found = {}
    for top in ("data", "runs", "work"):
        for p in sorted((root / top).rglob("*")):
            if p.is_file() and ".lock" not in p.name and "stage.json" != p.name:
                found[str(p.relative_to(root))] = digest(p)
    return found


def compare(a: dict, b: dict) -> list[tuple[str, str]]:
    rows = []
    for key in sorted(set(a) | set(b)):
        if key not in a:
            rows.append((key, "only after"))
        elif key not in b:
            rows.append((key, "only before"))
        elif a[key] != b[key]:
            what = "differs"
            if isinstance(a[key], dict) and isinstance(b[key], dict):
                keys = [k for k in sorted(set(a[key]) | set(b[key])) if a[key].get(k) != b[key].get(k)]
                what = f"differs in {len(keys)} entries: {', '.join(keys[:6])}{' ...' if len(keys) > 6 else ''}"
            rows.append((key, what))
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("paths", nargs="+", help="DIR, or with --compare: BEFORE.json AFTER.json")
    ap.add_argument("--compare", action="store_true")
    a = ap.parse_args(argv)
    if not a.compare:
        json.dump(fingerprint(Path(a.paths[0])), sys.stdout, indent=1, sort_keys=True, default=str)
        return 0
    before, after = (json.loads(Path(p).read_text(encoding="utf-8")) for p in a.paths)
    rows = compare(before, after)
    print(f"| file | result |\n|---|---|\n" + "".join(f"| {k} | {v} |\n" for k, v in rows)
          + f"\n{len(before)} files before, {len(after)} after, {len(rows)} differ")
    return 1 if rows else 0


if __name__ == "__main__":
    sys.exit(main())
