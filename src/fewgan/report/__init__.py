"""fewgan.report"""
