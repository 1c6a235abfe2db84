"""Research statistics shared by equity and option strategies (not tied to how a trial is simulated).

* :mod:`~backtests.research.specs` — the validated ``walkforward``, ``montecarlo`` and ``overfitting`` sections
  of research configs;
* :mod:`~backtests.research.walkforward` — rolling/anchored walk-forward over a (dates × trials) return matrix;
* :mod:`~backtests.research.montecarlo` — trade bootstrap, shuffle, parametric paths and risk of ruin;
* :mod:`~backtests.research.overfitting` — deflated Sharpe ratio and PBO by CSCV over the trials' returns;
* :mod:`~backtests.research.runner` — how a sweep maps its chunks (sequentially, or a flow's task runner).
"""
