"""pix2pix (Isola, Zhu, Zhou & Efros, CVPR 2017): spec.py (params schema, capabilities), model.py, nets.py."""
