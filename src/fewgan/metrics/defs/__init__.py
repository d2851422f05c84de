"""One file per metric: each module here registers one `fewgan.metrics.registry.Metric` subclass with
`@register_metric`; `fewgan.metrics.registry.discover()` imports every module of this package (no list to
keep). Keep torch out of module level: `fewgan select` and `fewgan report` import these files for their
declarations (import the maths, fewgan.metrics.fid/swd/msssim, inside the methods)."""
