"""Two domains for translation (fewgan.data.pairs, params datasets.<name>.translation): the deterministic edge
filter, the domains of a class dataset, the schema's errors, and AFHQ cat <-> dog curated and split 9:1 per
domain by the existing machinery."""

from __future__ import annotations

import hashlib

import pytest
import torch

from fewgan.data import curate, split
from fewgan.data.pairs import TranslationConfigError, domain_images, edge_map
from fewgan.data.schema import DatasetConfigError, resolve_entry
from .helpers import params_for


def _images(n=2, size=16, seed=0):
    return torch.randint(0, 256, (n, 3, size, size), generator=torch.Generator().manual_seed(seed), dtype=torch.uint8)


def test_edge_map_is_deterministic_and_pinned():
    """Integer arithmetic only: the same bytes on every machine. The pinned hash catches any change of the
    filter (luma weights, blur, Sobel, threshold rule); change it only with the filter, and say so."""
    x = _images()
    e1, e2 = edge_map(x, 0.1), edge_map(x.clone(), 0.1)
    assert torch.equal(e1, e2) and e1.dtype == torch.uint8 and e1.shape == x.shape
    assert hashlib.sha256(e1.numpy().tobytes()).hexdigest() == (
        "258c9a84b6cb64191754b6261051d2c202496394e6f5a62c0501ba864b64a589")
    assert set(e1.unique().tolist()) == {0, 255} and torch.equal(e1[:, 0], e1[:, 2])  # black on white, grey
    assert abs((e1 == 0).float().mean().item() - 0.1) < 0.02  # about edge_fraction of the pixels
    assert torch.equal(edge_map(x.flip(3), 0.1), e1.flip(3))  # a flipped pair stays a pair


def test_edges_of_a_square_follow_its_outline():
    sq = torch.zeros(1, 3, 16, 16, dtype=torch.uint8)
    sq[..., 4:12, 4:12] = 255
    edges = edge_map(sq, 0.25)[0, 0] == 0
    rows, cols = edges.nonzero().unbind(1)
    assert edges.any() and rows.min() >= 2 and rows.max() <= 13 and cols.min() >= 2 and cols.max() <= 13
    assert not edges[7:9, 7:9].any()  # the flat inside has no edge
    assert not edge_map(torch.full((1, 3, 8, 8), 128, dtype=torch.uint8), 0.1).eq(0).any()  # flat: no edges
    with pytest.raises(ValueError, match="edge_fraction"):
        edge_map(sq, 1.0)


def test_domain_images_of_classes_and_of_edges():
    x = _images(5)
    labels = torch.tensor([0, 1, 2, 0, 1])
    index = {"cat": 0, "dog": 1, "wild": 2}
    a, b, paired = domain_images({"kind": "domains", "domains": ["cat", "dog"], "edge_fraction": 0.1}, x, labels, index)
    assert not paired and torch.equal(a, x[[0, 3]]) and torch.equal(b, x[[1, 4]])
    with pytest.raises(TranslationConfigError, match=r"datasets\.d\.translation\.domains names \['horse'\]"):
        domain_images({"kind": "domains", "domains": ["cat", "horse"], "edge_fraction": 0.1}, x, labels, index,
                      dataset="d")
    a, b, paired = domain_images({"kind": "edges", "domains": None, "edge_fraction": 0.1}, x, None, {})
    assert paired and torch.equal(b, x) and torch.equal(a, edge_map(x, 0.1))
    with pytest.raises(TranslationConfigError, match="not a translation dataset"):
        domain_images({"kind": "none", "domains": None, "edge_fraction": 0.1}, x, None, {})


def _entry(**translation):
    return {"source": {"kind": "folder", "path": "x"}, "mode": "none", "resolution": 32,
            "translation": {"kind": "none", "domains": None, "edge_fraction": 0.1, **translation}}


def test_the_schema_names_the_key():
    ok = resolve_entry(params_for("d", {**_entry(kind="domains", domains=["cat", "dog"]),
                                        "classes": {"from": "subfolder", "csv": None}}), "d")
    assert ok["translation"]["domains"] == ["cat", "dog"]
    assert resolve_entry(params_for("d", _entry()), "d")["translation"]["kind"] == "none"  # the default
    with pytest.raises(DatasetConfigError, match=r"datasets\.d\.translation\.classes|classes\.from is 'none'"):
        resolve_entry(params_for("d", _entry(kind="domains", domains=["cat", "dog"])), "d")
    with pytest.raises(DatasetConfigError, match=r"datasets\.d\.translation\.domains is required"):
        resolve_entry(params_for("d", {**_entry(kind="domains"), "classes": {"from": "subfolder", "csv": None}}), "d")
    with pytest.raises(DatasetConfigError, match=r"datasets\.d\.translation\.domains is set but kind is 'edges'"):
        resolve_entry(params_for("d", _entry(kind="edges", domains=["a", "b"])), "d")
    with pytest.raises(DatasetConfigError, match=r"datasets\.d\.translation\.kind"):
        resolve_entry(params_for("d", _entry(kind="paired")), "d")
    with pytest.raises(DatasetConfigError, match=r"datasets\.d\.translation\.domains"):
        resolve_entry(params_for("d", {**_entry(kind="domains", domains=["cat", "cat"]),
                                       "classes": {"from": "subfolder", "csv": None}}), "d")


def test_unpaired_batches_draw_the_domains_independently_and_paired_ones_together():
    from fewgan.train.data import PairBatches

    a, b = _images(6, 8, seed=1), _images(4, 8, seed=2)
    cpu = torch.device("cpu")
    unpaired = PairBatches(a, b, False, {"kind": "domains"}, 2, 0, 0, 1, True, cpu, False)
    x_a, labels, x_b = unpaired(5)
    assert labels is None and x_a.shape == x_b.shape == (2, 3, 8, 8)
    assert set(unpaired.position(5)) == {"A", "B"} and unpaired.position(5)["A"]["steps_per_epoch"] == 3
    assert all(torch.equal(u, v) for u, v in zip(unpaired(5), PairBatches(a, b, False, {}, 2, 0, 0, 1, True, cpu, False)(5))
               if u is not None)
    e = edge_map(a, 0.1)
    paired = PairBatches(e, a, True, {"kind": "edges"}, 2, 0, 0, 1, True, cpu, False)
    for k in range(6):
        x_e, _, x_p = paired(k)
        from fewgan.images import from_uint8, to_uint8

        assert torch.equal(from_uint8(edge_map(to_uint8(x_p), 0.1)), x_e)
    with pytest.raises(ValueError, match="one image per pair"):
        PairBatches(e[:3], a, True, {}, 2, 0, 0, 1, False, cpu, False)
    grid = unpaired.inputs(5, torch.Generator().manual_seed(0))
    assert grid.shape == (5, 3, 8, 8) and grid.min() >= -1 and grid.max() <= 1


@pytest.mark.shared_data
def test_afhq_cat2dog_curates_and_splits_each_domain_nine_to_one(shared_data, tmp_path, monkeypatch):
    """params/datasets.yaml's afhq_cat2dog: the domains are the cat (15) and dog (11) sub-folders, split 9:1
    each by the stratified split (13/2 and 10/1)."""
    from pathlib import Path

    from fewgan.data.loading import load_images
    from fewgan.params import resolve

    params, _ = resolve("demo", Path(__file__).resolve().parents[2] / "params")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("FEWGAN_SHARED_DATA", str(shared_data))
    entry = params["datasets"]["afhq_cat2dog"]
    assert entry["translation"] == {"kind": "domains", "domains": ["cat", "dog"], "edge_fraction": 0.1}
    entry["resolution"] = 32  # decoding dominates; the split does not depend on the size
    curate.run(params, "afhq_cat2dog", tmp_path / "cur")
    ss = split.run(params, "afhq_cat2dog", tmp_path / "cur", tmp_path / "spl")
    assert ss["classes"]["counts"]["cat"] == {"train": 13, "test": 2}
    assert ss["classes"]["counts"]["dog"] == {"train": 10, "test": 1}
    for which, (n_a, n_b) in {"train": (13, 10), "test": (2, 1)}.items():
        images, _, labels = load_images(tmp_path / "cur", tmp_path / "spl", which, with_labels=True)
        from fewgan.data.loading import split_classes

        a, b, paired = domain_images(entry["translation"], images, labels, split_classes(tmp_path / "spl"))
        assert (a.shape[0], b.shape[0], paired) == (n_a, n_b, False)
