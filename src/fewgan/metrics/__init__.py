"""fewgan.metrics: FID/KID (torch-fidelity's Inception; `fid`), ProGAN SWD (`swd`) and MS-SSIM (`msssim`),
and the metric stages `score` (every snapshot) and `evaluate` (the selected generator). Every metric is one
registered file in `defs/` (`registry`: what it needs and declares); `inputs` computes what they share once.

Which metric picks a snapshot is `fewgan.select`'s business; the report ranks models from evaluate's
metrics.json."""
