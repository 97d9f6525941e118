"""bench: a pruning and compression benchmark for CIFAR networks.

Runs pruning methods (plugins) under identical training budgets and reports
accuracy against the bytes of a real compressed artifact.
"""

__version__ = "0.1.0"
