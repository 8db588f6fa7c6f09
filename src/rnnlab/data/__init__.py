"""rnnlab.data"""
