"""rnnlab.energy"""
