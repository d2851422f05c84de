"""params/train.yaml: the shared training loop (fewgan.train.loop)."""

from fewgan.schemas import strict
from fewgan.models.specs import POLICY_PATTERN

TRAIN_SCHEMA = strict({
    "iterations": {"type": "integer", "minimum": 1,
                   "description": "training iterations (D step(s) + one G step each); paper 50,000"},
    "budget": {"description": "stop before train.iterations once this much is spent: {kimg: N} (images shown), "
                              "{flops: N} (training FLOPs, fewgan.train.flops) or {seconds: N} (training steps' wall "
                              "time: machine-dependent); null: train.iterations alone",
               "oneOf": [{"type": "null"},
                         {"type": "object", "minProperties": 1, "maxProperties": 1, "additionalProperties": False,
                          "properties": {u: {"type": "number", "exclusiveMinimum": 0}
                                         for u in ("kimg", "flops", "seconds")}}]},
    "batch_size": {"type": "integer", "minimum": 1,
                   "description": "global batch, split evenly over DDP ranks; FastGAN 8"},
    "snapshot_every": {"type": "integer", "minimum": 1,
                       "description": "write a snapshot and the resume state every N iterations (and at the end)"},
    "sample_every": {"type": "integer", "minimum": 1,
                     "description": "write a sample grid of the EMA generator every N iterations (and at the end)"},
    "log_every": {"type": "integer", "minimum": 1, "description": "log.jsonl row every N iterations"},
    "augment_policy": {"type": "string", "pattern": POLICY_PATTERN,
                       "description": "DiffAugment policy used when the model's block has no augment_policy"},
    "precision": {"enum": ["auto", "fp32", "bf16"],
                  "description": "bf16: autocast for G and D forward/backward (fp32 weights, optimiser state, "
                                 "loss reductions, R1, EMA); auto: bf16 on CUDA, fp32 on CPU"},
    "channels_last": {"enum": ["auto", True, False], "description": "NHWC memory format; auto: on for CUDA"},
    "xflip": {"type": "boolean", "description": "random horizontal flip of the real images"},
    "grid_size": {"type": "integer", "minimum": 1, "maximum": 32,
                  "description": "sample grids show grid_size x grid_size images"},
    "interpolation_steps": {"type": "integer", "minimum": 2, "maximum": 64},
    "live": strict({
        "dvclive": {"type": "boolean", "description": "DVCLive curves and sample grids while training "
                                                      "(work/D/M/sS/dvclive; `dvc plots show`)"},
        "tensorboard": {"enum": ["auto", True, False],
                        "description": "TensorBoard event files (work/D/M/sS/tensorboard); auto: when the "
                                       "tensorboard package is installed (pip install 'fewgan[tensorboard]')"},
    }),
})
