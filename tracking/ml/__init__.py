"""ML signal models: labels from forward returns, features from the lake, purged walk-forward training.

They live in :mod:`tracking` (not in a research package) because a model's whole lifecycle is a tracking
concern: trained as a tracked job, logged as a pyfunc signal model, registered, judged by the promotion
gate.  Research packages consume models only through the registry (``models:/NAME@champion``).
"""
