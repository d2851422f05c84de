"""Improved precision and recall (Kynkäänniemi et al., NeurIPS 2019, "Improved Precision and Recall Metric
for Assessing Generative Models"), as torch-fidelity 0.4.0's `prc` computes it (metric_prc.py,
`calculate_precision_recall_full`): each set's manifold is the union of balls around its feature vectors with
radius the distance to the k-th nearest neighbour in the same set (k = 3, the paper's default and
torch-fidelity's `prc_neighborhood`); precision = the fraction of fakes inside the real manifold, recall = the
fraction of reals inside the fake manifold (a point on a ball's boundary counts as inside). Distances are
torch.cdist in float32, as torch-fidelity's.

`prc_indicators` returns the per-sample indicators, whose means are precision and recall (equal to
torch-fidelity's `prc_features_to_metric`: tests/metrics/test_effnet.py); the bootstrap resamples these
indicators with the radii held fixed (`indicator_samples`), because resampling feature rows with replacement
puts duplicates inside each other's k-NN balls (zero distances) and shrinks the radii.
"""

from __future__ import annotations

import numpy as np
import torch

NEIGHBORHOOD = 3  # Kynkäänniemi et al. 2019, Sec. 3 (k = 3); torch-fidelity defaults.prc_neighborhood


def knn_radii(feats: torch.Tensor, k: int) -> torch.Tensor:
    """Distance of each row to its k-th nearest neighbour in the same set (itself excluded: the (k+1)-th
    smallest distance, the first being the zero self-distance)."""
    if feats.shape[0] < k + 1:
        raise ValueError(f"precision/recall with k = {k} needs at least {k + 1} feature vectors per set, "
                         f"got {feats.shape[0]}")
    return torch.cdist(feats, feats).kthvalue(k + 1, dim=1).values


def prc_indicators(fake: torch.Tensor, real: torch.Tensor, k: int = NEIGHBORHOOD) -> tuple[torch.Tensor, torch.Tensor]:
    """(in_real (n_fake,) bool: each fake inside the real manifold; in_fake (n_real,) bool: each real inside
    the fake manifold). Features as given (float32 in fewgan); fakes are torch-fidelity's input 1."""
    if fake.dim() != 2 or real.dim() != 2 or fake.shape[1] != real.shape[1]:
        raise ValueError(f"precision/recall: feature shapes {tuple(fake.shape)} and {tuple(real.shape)} differ")
    fake, real = fake.cpu(), real.cpu()
    r_fake, r_real = knn_radii(fake, k), knn_radii(real, k)
    d_real_fake = torch.cdist(real, fake)                       # (n_real, n_fake)
    in_fake = (d_real_fake <= r_fake[None, :]).any(dim=1)      # recall: real inside some fake's ball
    in_real = (d_real_fake.T <= r_real[None, :]).any(dim=1)    # precision: fake inside some real's ball
    return in_real, in_fake


def precision_recall(fake: torch.Tensor, real: torch.Tensor, k: int = NEIGHBORHOOD) -> dict[str, float]:
    in_real, in_fake = prc_indicators(fake, real, k)
    p, r = float(in_real.float().mean()), float(in_fake.float().mean())
    return {"precision": p, "recall": r, "f_score": 2 * p * r / max(1e-5, p + r)}  # torch-fidelity's F-score


def indicator_samples(ind: torch.Tensor, samples: int, gen: torch.Generator) -> np.ndarray:
    """Mean of each resample of the indicators (with replacement; radii fixed)."""
    from fewgan.metrics.bootstrap import mean_samples

    return mean_samples(ind.double(), samples, gen)
