"""params/evaluation.yaml: metrics, snapshot scoring and selection, pretrained weights (fewgan.metrics)."""

from fewgan.schemas import strict

_POS_INT = {"type": "integer", "minimum": 1}
_SHA256 = {"oneOf": [{"type": "null"}, {"type": "string", "pattern": "^[0-9a-f]{64}$"}]}
_WEIGHT_FILE = strict({
    "path": {"type": ["string", "null"]},
    "url": {"type": ["string", "null"]},
    # null = accept any file at `path` (reported as non-standard)
    "sha256": _SHA256,
})

EVALUATION_SCHEMA = strict({
    "fid": strict({
        "n_fake": {"type": "integer", "minimum": 2},   # DiffAugment fid5k-train: 5,000
        "batch_size": _POS_INT,
        "reference": {"enum": ["train"]},
        "method": {"enum": ["fast", "torch-fidelity"]},
    }),
    "kid": strict({"subsets": _POS_INT, "max_subset_size": {"type": "integer", "minimum": 2}}),
    "swd": strict({
        "patches_per_image": _POS_INT,          # ProGAN: 128
        "patch_size": {"type": "integer", "minimum": 1},  # ProGAN: 7 (must be odd)
        "min_resolution": {"type": "integer", "minimum": 8},  # ProGAN: 16
        "directions": _POS_INT,                 # ProGAN: 128
        "repeats": _POS_INT,                    # ProGAN: 4
        "max_images": {"type": "integer", "minimum": 0},
        "batch_size": _POS_INT,
    }),
    # EfficientNet-Lite0 feature metrics (fd_effnet, kid_effnet, prc_effnet)
    "effnet": strict({"batch_size": _POS_INT, "channels_last": {"type": "boolean"}, "fold_bn": {"type": "boolean"}}),
    # precision/recall (Kynkaanniemi et al. 2019): k of the k-NN radii (paper: 3); equal-size sets or all fakes
    "prc": strict({"neighborhood": _POS_INT, "fakes": {"enum": ["equal", "all"]}}),
    "msssim": strict({"pairs": _POS_INT, "batch_size": _POS_INT}),
    # percentile bootstrap intervals of evaluate's metrics (fewgan.metrics.bootstrap); samples 0 = off
    "bootstrap": strict({
        "samples": {"type": "integer", "minimum": 0},
        "level": {"type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 1},
        "per_metric": {"type": "object", "additionalProperties": {"type": "integer", "minimum": 0}},
    }),
    "score": strict({
        "n_fake": {"type": "integer", "minimum": 2},
        "kid": {"type": "boolean"},
        "swd": {"type": "boolean"},
        "effnet": {"type": "boolean"},
        "untrained": {"type": "boolean"},
        "snapshots": {"oneOf": [{"const": "all"}, _POS_INT]},
        "curve_test": {"type": "boolean"},
    }),
    # `fewgan evaluate`: untrained false skips the metrics of an untrained fallback network (metrics.json not_computed)
    "evaluate": strict({"untrained": {"type": "boolean"}}),
    # which metric picks a run's snapshot and ranks the models (fewgan.select): auto = FID with the standard
    # Inception weights, else FD-EffNet with the pinned EfficientNet-Lite0 weights, else SWD (no pretrained network)
    "select": strict({"metric": {"enum": ["auto", "fid", "kid", "fd_effnet", "kid_effnet", "swd"]},
                      # a Fréchet-distance metric selects only among snapshots whose fakes have at least this
                      # fraction of the real feature variance (tr S_fake / tr S_real); 0: off
                      "min_spread": {"type": "number", "minimum": 0},
                      # only snapshots trained within this budget compete (equal-compute selection); null: all
                      "budget": {"oneOf": [{"type": "null"}, {
                          "type": "object", "minProperties": 1, "maxProperties": 1, "additionalProperties": False,
                          "properties": {u: {"type": "number", "exclusiveMinimum": 0}
                                         for u in ("iterations", "kimg", "flops", "seconds")}}]}}),
    "feature_cache_dir": {"type": "string"},
    "channels_last": {"type": "boolean"},
    "weights": strict({
        "cache_dir": {"type": "string"},
        "download": {"type": "boolean"},
        "allow_untrained_fallback": {"type": "boolean"},
        "inception": _WEIGHT_FILE,
        "vgg16": _WEIGHT_FILE,
        "alexnet": _WEIGHT_FILE,
        "effnet_lite0": _WEIGHT_FILE,   # url null: shipped in a PyPI package, never downloaded
    }),
})
