"""rnnlab.analysis"""
