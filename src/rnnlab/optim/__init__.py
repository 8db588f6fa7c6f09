"""rnnlab.optim"""
