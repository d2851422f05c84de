"""fewgan.train"""
