"""The reports page's HTML (Jinja2, autoescaped): no JavaScript, no external assets, landmarks, captions and
header cells for screen readers, results in words (not colour alone), wide tables scroll inside their own
box so the page fits a phone's width."""

from __future__ import annotations

STYLE = """
*{box-sizing:border-box}body{margin:0;font:16px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;
color:#1f2328;background:#f6f8fa}a{color:#0550ae}header,main,footer{max-width:64rem;margin:0 auto;padding:1rem}
header h1{margin:.2rem 0;font-size:1.6rem}nav ul{list-style:none;margin:.4rem 0 0;padding:0;display:flex;
flex-wrap:wrap;gap:.2rem 1rem}section{background:#fff;border:1px solid #d0d7de;border-radius:.5rem;
margin:1rem 0;padding:1rem 1.2rem}h2{font-size:1.25rem;margin:0 0 .6rem}h3{font-size:1.05rem;margin:1rem 0 .4rem}
.scroll{overflow-x:auto;max-width:100%}table{border-collapse:collapse;width:100%;font-variant-numeric:tabular-nums}
caption{text-align:left;font-size:.85rem;color:#57606a;padding:0 0 .3rem}th,td{padding:.35rem .6rem;
border-bottom:1px solid #eaeef2;text-align:right;white-space:nowrap}th:first-child,td:first-child{text-align:left}
tbody th{white-space:normal}tbody th,tfoot th{position:sticky;left:0;background:#fff}
thead th{border-bottom:2px solid #d0d7de;font-weight:600}tbody th{font-weight:600}tfoot th,tfoot td{
font-weight:600;border-top:2px solid #d0d7de}.what{display:block;font-weight:400;font-size:.8rem;color:#57606a;
white-space:normal}.none{color:#57606a}.res{font-weight:600}.res-met{color:#1a7f37}.res-missed{color:#cf222e}
.res-no_data{color:#57606a}figure{margin:1rem 0;overflow-x:auto}figure svg{display:block;width:100%;height:auto;
min-width:32rem}
figcaption{font-size:.85rem;color:#57606a}.grid{display:grid;grid-template-columns:repeat(auto-fit,minmax(15rem,1fr));
gap:0 1.5rem}.facts{display:grid;grid-template-columns:auto 1fr;gap:.2rem 1rem;margin:0 0 1rem}.facts dt{
font-weight:600}.facts dd{margin:0}.meta{font-size:.85rem;color:#57606a}details{margin:.6rem 0}summary{
cursor:pointer;color:#0550ae}footer dl{font-size:.85rem;color:#57606a}footer dt{font-weight:600;color:#1f2328}
footer dd{margin:0 0 .4rem}@media (max-width:40rem){body{font-size:15px}header h1{font-size:1.3rem}
header,main,footer{padding:.5rem}section{padding:.6rem}table{font-size:14px}th,td{padding:.3rem .25rem}#durations td,#targets td{white-space:normal}
.what{font-size:.75rem}.facts{grid-template-columns:1fr}.facts dd{margin:0 0 .4rem}}
"""

PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{ title }}</title>
<style>{{ style }}</style>
</head>
<body>
<header role="banner">
<h1>{{ title }}</h1>
<p class="meta">Incidents declared from {{ window.since }} up to {{ window.until }}{% for f in window.filters %} · {{ f }}{% endfor %}.
Generated {{ generated }}.</p>
<nav aria-label="Report sections"><ul><li><a href="#targets">Targets</a></li><li><a href="#times">Response times</a></li>
<li><a href="#mtbf">Between failures</a></li><li><a href="#volume">Incidents</a></li>
<li><a href="#quality">Alert quality</a></li><li><a href="#follow">Follow-through</a></li></ul></nav>
</header>
<main id="main">
<section id="targets" aria-labelledby="targets-h"><h2 id="targets-h">Targets</h2>
{% if targets %}<div class="scroll"><table>
<caption>Each target against this window's figure</caption>
<thead><tr><th scope="col">Figure</th><th scope="col">Target</th><th scope="col">Measured</th><th scope="col">Result</th></tr></thead>
<tbody>
{% for t in targets %}<tr data-metric="{{ t.metric }}"{% if t.scope %} data-scope="{{ t.scope }}"{% endif %}><th scope="row">{{ t.figure }}</th><td>{{ t.target }}</td>
<td{% if t.raw is not none %} data-value="{{ t.raw }}"{% endif %}>{{ t.value }}</td><td class="res res-{{ t.status }}" data-status="{{ t.status }}">{{ t.result }}</td></tr>
{% endfor %}</tbody></table></div>
{% else %}<p>No targets are configured.</p>{% endif %}
</section>
<section id="times" aria-labelledby="times-h"><h2 id="times-h">Response times</h2>
<p>{{ totals.incidents }} incidents: {{ totals.stood_down }} stood down, {{ totals.unresolved }} not resolved yet.
Stood-down incidents are left out of these times; unresolved ones are not in MTTR yet.</p>
<div class="scroll"><table id="durations">
<caption>p50 and p90 are nearest-rank percentiles (half and nine in ten of the incidents took at most this long)</caption>
<thead><tr><th scope="col">Figure</th><th scope="col">Count</th><th scope="col">p50</th><th scope="col">p90</th><th scope="col">Mean</th></tr></thead>
<tbody>
{% for f in figures %}<tr data-metric="{{ f.key }}"><th scope="row"><abbr title="{{ f.name }}">{{ f.label }}</abbr><span class="what">{{ f.what }}</span></th>
<td>{{ f.count }}</td>{% for c in f.cells %}<td{% if c.raw is not none %} data-seconds="{{ c.raw }}"{% endif %}{% if c.raw is none %} class="none"{% endif %}>{{ c.text }}</td>{% endfor %}</tr>
{% endfor %}</tbody></table></div>
<figure>{{ charts.weekly }}<figcaption>Weekly p50 (solid) and p90 (dashed) times; the table below has the same figures.</figcaption></figure>
<details><summary>Weekly figures as a table</summary><div class="scroll"><table id="weeks">
<caption>Per ISO week (Monday to Sunday, UTC) of declaration</caption>
<thead><tr><th scope="col">Week</th><th scope="col">Incidents</th><th scope="col">Stood down</th><th scope="col">MTTA p50</th><th scope="col">MTTA p90</th><th scope="col">MTTR p50</th><th scope="col">MTTR p90</th></tr></thead>
<tbody>
{% for w in weeks %}<tr><th scope="row">{{ w.week }}</th><td>{{ w.incidents }}</td><td>{{ w.stood_down }}</td>{% for c in w.cells %}<td>{{ c }}</td>{% endfor %}</tr>
{% else %}<tr><td colspan="7">No weeks in this window.</td></tr>{% endfor %}</tbody></table></div></details>
</section>
<section id="mtbf" aria-labelledby="mtbf-h"><h2 id="mtbf-h">Time between failures, by service</h2>
<p class="meta">Intervals between consecutive incidents of a service (declarations, stood-down incidents left out): a service with one incident in the window has none yet.{% if mtbf_more %} Showing the {{ mtbf|length }} services with the most incidents of {{ mtbf_more + mtbf|length }}.{% endif %}</p>
<div class="scroll"><table id="mtbf-table">
<caption>MTBF per service</caption>
<thead><tr><th scope="col">Service</th><th scope="col">Incidents</th><th scope="col">Intervals</th><th scope="col">p50</th><th scope="col">p90</th><th scope="col">Mean</th>{% if mtbf_target %}<th scope="col">Target {{ mtbf_target }}</th>{% endif %}</tr></thead>
<tbody>
{% for s in mtbf %}<tr data-service="{{ s.service }}"><th scope="row">{{ s.service }}</th><td>{{ s.incidents }}</td><td>{{ s.count }}</td>{% for c in s.cells %}<td>{{ c.text }}</td>{% endfor %}{% if mtbf_target %}<td class="res res-{{ s.target.status if s.target else 'no_data' }}">{{ s.target.result if s.target else '– No data' }}</td>{% endif %}</tr>
{% else %}<tr><td colspan="7">No incidents with a service.</td></tr>{% endfor %}</tbody></table></div>
</section>
<section id="volume" aria-labelledby="volume-h"><h2 id="volume-h">Incidents</h2>
<figure>{{ charts.severity }}<figcaption>Incidents declared in the window, by severity.</figcaption></figure>
<div class="grid">
{% for c in counts %}<div class="scroll"><table id="{{ c.id }}"><caption>{{ c.caption }}</caption>
<thead><tr><th scope="col">{{ c.head }}</th><th scope="col">Incidents</th></tr></thead>
<tbody>{% for key, n in c.rows %}<tr><th scope="row">{{ key }}</th><td>{{ n }}</td></tr>{% else %}<tr><td colspan="2">None.</td></tr>{% endfor %}</tbody>
</table>{% if c.more %}<p class="meta">And {{ c.more }} more in the CSV and JSON exports.</p>{% endif %}</div>
{% endfor %}</div>
</section>
<section id="quality" aria-labelledby="quality-h"><h2 id="quality-h">Alert quality</h2>
<dl class="facts">
<dt>False-positive rate, alert-opened</dt><dd id="fp-alert">{{ quality.alert_rate }}</dd>
<dt>False-positive rate, all incidents</dt><dd id="fp-all">{{ quality.all_rate }}</dd>
<dt>Paged, never acknowledged</dt><dd id="unacked">{{ quality.unacked }}</dd>
</dl>
<figure>{{ charts.noisiest }}<figcaption>Alert notifications received per rule (repeats included), the ten noisiest.</figcaption></figure>
<div class="scroll"><table id="rules">
<caption>Per alert rule (the rule of the incident's first alert){% if rules_more %}: the {{ rules|length }} with the most incidents, {{ rules_more }} more in the exports{% endif %}</caption>
<thead><tr><th scope="col">Alert rule</th><th scope="col">Incidents</th><th scope="col">Stood down</th><th scope="col">False-positive rate</th><th scope="col">Paged, unacknowledged</th><th scope="col">Notifications</th></tr></thead>
<tbody>
{% for r in rules %}<tr><th scope="row">{{ r.rule }}</th><td>{{ r.incidents }}</td><td>{{ r.stood_down }}</td><td>{{ r.rate }}</td><td>{{ r.paged_unacknowledged }}</td><td>{{ r.notifications }}</td></tr>
{% else %}<tr><td colspan="6">No incident was opened by an alert.</td></tr>{% endfor %}</tbody></table></div>
</section>
<section id="follow" aria-labelledby="follow-h"><h2 id="follow-h">Action item follow-through</h2>
<p class="meta">Action items of the incidents above, as of {{ today }} (UTC). Overdue: open past its due date. On time: done on or before its due date.</p>
<div class="scroll"><table id="follow-table">
<caption>Action items by team</caption>
<thead><tr><th scope="col">Team</th><th scope="col">Items</th><th scope="col">Open</th><th scope="col">Overdue</th><th scope="col">Done on time</th><th scope="col">Done late</th><th scope="col">Dropped</th><th scope="col">On time</th></tr></thead>
<tbody>
{% for f in teams %}<tr><th scope="row">{{ f.team }}</th>{% for c in f.cells %}<td>{{ c }}</td>{% endfor %}</tr>
{% else %}<tr><td colspan="8">No action items.</td></tr>{% endfor %}</tbody>
<tfoot><tr><th scope="row">All teams</th>{% for c in everyone.cells %}<td>{{ c }}</td>{% endfor %}</tr></tfoot>
</table></div>
</section>
</main>
<footer role="contentinfo">
<dl>{% for f in definitions %}<dt>{{ f.name }} ({{ f.label }})</dt><dd>{{ f.definition }}</dd>{% endfor %}</dl>
<p class="meta">All times are UTC (Coordinated Universal Time). The same figures: <code>incidentflow report --json</code> or <code>--csv</code>, and <code>GET /v1/reports</code>.</p>
</footer>
</body>
</html>
"""
