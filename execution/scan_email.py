"""The scan e-mail: a text part and an HTML part with the ranked signals and one small chart per signal
(inline PNG images referenced by ``cid:``)."""

from __future__ import annotations

from email.message import EmailMessage
from email.utils import make_msgid

import jinja2

from execution.charts import signal_chart
from execution.report import render_text, text_rows
from execution.scanner import ScanResult

MAX_CHARTS = 10

_TEMPLATE = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined).from_string(
    """<!doctype html>
<html><body style="font-family: Helvetica, Arial, sans-serif; font-size: 13px; color: #222;">
<h2 style="margin-bottom: 4px;">quantlake scan {{ as_of }}</h2>
<p style="margin-top: 0;">{{ n_signals }} signal(s) in a universe of {{ universe }} symbol(s)
({{ with_bars }} with bars on {{ as_of }}).</p>
{% if rows %}
<table id="signals" cellpadding="4" cellspacing="0" style="border-collapse: collapse; border: 1px solid #ccc;">
<thead><tr style="background: #f0f0f0;">{% for h in headers %}<th align="left">{{ h }}</th>{% endfor %}</tr></thead>
<tbody>
{% for row in rows %}<tr>{% for v in row %}<td>{{ v }}</td>{% endfor %}</tr>
{% endfor %}</tbody>
</table>
{% for c in charts %}
<div style="display: inline-block; margin: 8px 8px 0 0;">
<div style="font-size: 11px;">{{ c.label }}</div>
<img src="cid:{{ c.cid }}" alt="{{ c.label }}" width="360" height="140">
</div>
{% endfor %}
{% else %}
<p>No EMA crosses today.</p>
{% endif %}
{% if excluded %}<p style="color: #666; font-size: 11px;">Excluded: {{ excluded }}</p>{% endif %}
<p style="color: #666; font-size: 11px;">Score 0-100: MACD confirmation 40, cross strength 20, volume 20,
RSI context 20. Charts: close (grey), fast EMA (blue), slow EMA (orange).</p>
</body></html>
"""
)


def build_scan_email(result: ScanResult) -> EmailMessage:
    """The scan of ``result.as_of`` as an e-mail (no From/To: :func:`execution.notify.send` adds them)."""
    today = result.signals[result.signals["date"] == result.as_of].head(result.config.top)
    summary = result.summary()
    msg = EmailMessage()
    msg["Subject"] = f"quantlake scan {result.as_of}: {len(today)} signal(s)"
    msg.set_content(render_text(result))
    charts = []
    for row in today.head(MAX_CHARTS).itertuples(index=False):
        hist = result.history[result.history["symbol"] == row.symbol]
        cid = make_msgid(domain="quantlake.local")
        charts.append(
            {
                "cid": cid[1:-1],
                "label": f"#{row.rank} {row.symbol} {row.signal} {row.direction}",
                "png": signal_chart(hist, int(row.fast), int(row.slow), title=f"{row.symbol} {row.signal}"),
            }
        )
    excluded = "; ".join(f"{reason}: {', '.join(syms)}" for reason, syms in summary["excluded"].items())
    html = _TEMPLATE.render(
        as_of=result.as_of.isoformat(),
        n_signals=len(today),
        universe=summary["universe"],
        with_bars=summary["symbols_with_bars"],
        headers=["rank", "symbol", "signal", "direction", "close", "score", "MACD confirms", "RSI", "RSI event"],
        rows=text_rows(today),
        charts=charts,
        excluded=excluded,
    )
    msg.add_alternative(html, subtype="html")
    html_part = msg.get_body(preferencelist=("html",))
    assert isinstance(html_part, EmailMessage)
    for c in charts:
        html_part.add_related(c["png"], "image", "png", cid=f"<{c['cid']}>", disposition="inline",
                              filename=f"{c['label']}.png".replace("#", "").replace(" ", "_"))
    return msg

