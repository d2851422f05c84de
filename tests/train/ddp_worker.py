"""One rank of the DDP test (launched by torchrun from test_ddp.py): trains the tiny model with the real
loop on CPU/gloo and saves this rank's final live weights and EMA to <tmp>/rank<R>.pt."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import torch  # noqa: E402

import fewgan_train_testkit as kit  # noqa: E402
from fewgan.train import loop  # noqa: E402


def main() -> None:
    tmp = Path(sys.argv[1])
    cfg = json.loads((tmp / "worker.json").read_text())
    images, names = kit.toy_images(n=cfg["n_images"])
    loop.load_train_images = lambda c, s, r: (images.clone(), list(names))
    loop.load_train_labels = lambda split_dir, names: (None, {})
    params = kit.make_params(cfg["model_cfg"], **cfg["train"])
    res = loop.train(params, kit.DATASET, kit.MODEL, tmp / "curated", tmp / "split", tmp / "out", tmp / "work",
                     threads=1)
    rank = int(os.environ["RANK"])
    torch.save({"model": res.model.state_dict(), "G_ema": res.trainer.emas["G"].state_dict(), "run": res.run},
               tmp / f"rank{rank}.pt")


if __name__ == "__main__":
    main()
