"""rnnlab.engines"""
