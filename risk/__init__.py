"""Risk: position sizing, pre-trade limits, risk metrics, stress tests, portfolio optimization.

* :mod:`risk.sizing` — fixed, % of equity, Kelly, volatility targeting, risk-based, regime/confidence scaling
* :mod:`risk.book` — :class:`~risk.book.Order`, :class:`~risk.book.ComboOrder`, :class:`~risk.book.Position`,
  :class:`~risk.book.Account` and the book's exposure, dollar Greeks and maximum loss
* :mod:`risk.limits` — :class:`~risk.limits.Limits` and ``validate(order, account, positions)``
* :mod:`risk.metrics` — VaR/CVaR (historical, normal, Cornish-Fisher), beta, downside deviation, drawdowns
* :mod:`risk.stress` — historical windows and hypothetical shocks with full option repricing
* :mod:`risk.portfolio` — minimum variance, mean-variance, risk parity, HRP (riskfolio-lib)
* :mod:`risk.report` / :mod:`risk.cli` — ``quantlake risk report``

Plain functions: no Prefect or MLflow inside.  Heavy libraries (riskfolio, the pricing library) are imported
inside the functions that need them.
"""
