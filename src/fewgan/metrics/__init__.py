"""fewgan.metrics"""
