"""fewgan.data: dataset curation, splits and loading (stages `curate` and `split`).

Entry points (called by the CLI):
- `fewgan.data.curate.run(params, dataset, out_dir) -> summary`
- `fewgan.data.split.run(params, dataset, curated_dir, out_dir) -> summary`
- `fewgan.data.loading.load_images(curated_dir, split_dir, which, resolution=None) -> (uint8 NCHW, names)`;
  with `with_labels=True` -> (uint8 NCHW, names, class indices or None); `split_classes(split_dir)`
- `fewgan.data.classes`: class labels per image (params `datasets.<name>.classes`)
- `fewgan.data.align.align_face(image, landmarks, resolution, **opts) -> (image, quad)`,
  `fewgan.data.align.compute_quad(landmarks) -> (quad, side)`
- `fewgan.data.schema.DATASET_SCHEMA` (one entry of params/datasets.yaml), `resolve_entry(params, name)`
- `fewgan.data.synthetic.generate(out_dir, count, seed)` (the demo dataset)
"""
