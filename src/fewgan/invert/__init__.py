"""fewgan.invert"""
