"""fewgan.data"""
