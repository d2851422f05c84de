"""CycleGAN (Zhu, Park, Isola & Efros, ICCV 2017): spec.py (params schema, capabilities), model.py, nets.py."""
