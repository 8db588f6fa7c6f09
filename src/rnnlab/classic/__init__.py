"""rnnlab.classic"""
