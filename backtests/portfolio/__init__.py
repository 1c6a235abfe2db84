"""Portfolio backtests: several symbols or strategy sleeves sharing one cash account, rebalanced to weights
from :mod:`risk.portfolio` estimated on trailing data only (``quantlake portfolio``)."""
