"""Execution: the daily scanner and paper trading (DESIGN §1, last box).

* :mod:`execution.scanner` — EMA crosses with RSI context and MACD confirmation over a filtered universe,
  scored and ranked into the ``daily_signals`` table; :mod:`execution.report` renders them (JSON, text,
  MOTD) and :mod:`execution.notify` e-mails them (HTML with small charts, SMTP).
* :mod:`execution.trader` — one trading run: reconcile with the broker, check the drawdown kill switch,
  load ``models:/NAME@champion``, turn its target positions into sized, risk-checked orders with idempotent
  client order ids, submit them through a broker adapter (:mod:`execution.brokers`: ``paper``, ``alpaca``,
  ``ibkr``) behind a circuit breaker, and record every order and fill (:mod:`execution.audit`).

Nothing here imports ``flows``; the Prefect flows in ``flows/daily_scan.py`` and ``flows/paper_trade.py``
call these functions.
"""
