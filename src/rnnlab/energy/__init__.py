"""Associative memories and energy-based models: Hopfield networks (classical and modern),
the Ising model with its Monte Carlo samplers and exact results, Boltzmann machines,
restricted and deep Boltzmann machines.

Each model file holds pure tensor kernels (energies, update rules, samplers) beside one
readable ``nn.Module`` class whose docstring states the energy and the update rule.
"""

__all__: list[str] = []
