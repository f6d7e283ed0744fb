"""The public page's HTML (Jinja2, autoescaped): no JavaScript, no external assets, landmarks and labels for
screen readers, colours that pass WCAG AA contrast on white, responsive down to a phone's width."""

from __future__ import annotations

STYLE = """
*{box-sizing:border-box}body{margin:0;font:16px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;
color:#1f2328;background:#f6f8fa}a{color:#0550ae}header,main,footer{max-width:56rem;margin:0 auto;padding:1rem}
header h1{margin:.2rem 0;font-size:1.6rem}.banner{padding:1rem 1.2rem;border-radius:.5rem;color:#fff;
font-weight:600;font-size:1.15rem}.ind-none{background:#1a7f37}.ind-minor{background:#9a6700}
.ind-major{background:#bc4c00}.ind-critical{background:#cf222e}.ind-maintenance{background:#0550ae}
section{background:#fff;border:1px solid #d0d7de;border-radius:.5rem;margin:1rem 0;padding:1rem 1.2rem}
h2{font-size:1.2rem;margin:0 0 .6rem}ul.components{list-style:none;margin:0;padding:0}
ul.components>li{padding:.6rem 0;border-top:1px solid #eaeef2}ul.components>li:first-child{border-top:0}
.row{display:flex;justify-content:space-between;gap:1rem;flex-wrap:wrap}.st{font-weight:600}
.st-operational{color:#1a7f37}.st-degraded_performance{color:#9a6700}.st-partial_outage{color:#bc4c00}
.st-major_outage{color:#cf222e}.st-under_maintenance{color:#0550ae}
.bars{display:flex;gap:1px;margin:.4rem 0 .1rem;height:1.8rem}.bars i{flex:1;border-radius:1px;
background:#1a7f37}.bars .b-minor{background:#d4a72c}.bars .b-major{background:#fb8f44}
.bars .b-critical{background:#cf222e}
.legend{display:flex;justify-content:space-between;font-size:.8rem;color:#57606a}
article{border-top:1px solid #eaeef2;padding:.6rem 0}article:first-of-type{border-top:0}
article h3{margin:.1rem 0;font-size:1.05rem}.upd{margin:.4rem 0 .4rem .8rem;padding-left:.8rem;
border-left:3px solid #d0d7de}.upd p{margin:.1rem 0;white-space:pre-line}.meta{font-size:.85rem;color:#57606a}
.days{font-size:.85rem;color:#57606a}.days ul{margin:.2rem 0;padding-left:1.2rem}
fieldset{border:1px solid #d0d7de;border-radius:.4rem;margin:.6rem 0;padding:.4rem .8rem;display:flex;
flex-wrap:wrap;gap:.2rem 1.2rem}legend{padding:0 .3rem}input[type=email]{width:100%;max-width:24rem;
font:inherit;padding:.4rem;border:1px solid #57606a;border-radius:.3rem}button{font:inherit;padding:.4rem 1rem;
color:#fff;background:#0550ae;border:0;border-radius:.3rem;cursor:pointer}
.sr{position:absolute;width:1px;height:1px;overflow:hidden;clip:rect(0 0 0 0)}
@media (max-width:40rem){body{font-size:15px}.bars{height:1.4rem}header h1{font-size:1.3rem}}
"""

PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{ title }}{% if subtitle %} - {{ subtitle }}{% endif %}</title>
<link rel="alternate" type="application/atom+xml" title="{{ title }} incidents" href="{{ links.feed }}">
<style>{{ style }}</style>
</head>
<body>
<header role="banner">
<h1>{{ title }}</h1>
<nav aria-label="Status page"><a href="{{ links.home }}">Current status</a> · <a href="{{ links.history }}">History</a> ·
<a href="{{ links.feed }}">Atom feed</a></nav>
</header>
<main id="main">
{% if not history %}
<p class="banner ind-{{ indicator }}" role="status">{{ description }}</p>
{% for i in active %}{{ incident(i) }}{% endfor %}
{% if maintenances %}
<section aria-labelledby="mnt-h"><h2 id="mnt-h">Scheduled maintenance</h2>
{% for m in maintenances %}
<article><h3>{{ m.title }}</h3>
<p class="meta">{{ m.status_label }} · {{ m.window }}</p>{% if m.body %}<p>{{ m.body }}</p>{% endif %}
<p class="meta">Affects: {{ m.components }}</p></article>
{% endfor %}
</section>
{% endif %}
<section aria-labelledby="comp-h"><h2 id="comp-h">Components</h2>
<ul class="components">
{% for c in components %}
<li><div class="row"><span>{{ c.name }}{% if c.group %} <span class="meta">({{ c.group }})</span>{% endif %}</span>
<span class="st st-{{ c.status }}">{{ c.status_label }}</span></div>
{% if c.description %}<div class="meta">{{ c.description }}</div>{% endif %}
<div class="bars" role="img" aria-label="{{ c.name }}: {{ c.summary }}">
{% for b in c.bars %}{% if b %}<i class="b-{{ b.level }}" title="{{ b.title }}"></i>{% else %}<i></i>{% endif %}{% endfor %}
</div>
<div class="legend" aria-hidden="true"><span>{{ days }} days ago</span><span>{{ c.uptime }} % uptime</span>
<span>Today</span></div>
{% if c.disrupted %}<details class="days"><summary>{{ c.disrupted|length }} disrupted day{{ "s" if c.disrupted|length > 1 }}</summary><ul>
{% for d in c.disrupted %}<li><time datetime="{{ d.iso }}">{{ d.date }}</time>: {{ d.text }}</li>
{% endfor %}</ul></details>{% endif %}
</li>
{% endfor %}
</ul>
</section>
<section aria-labelledby="sub-h"><h2 id="sub-h">Get status mail</h2>
<form method="post" action="{{ links.subscribe }}">
<p><label for="sub-email">Email address</label><br>
<input id="sub-email" type="email" name="email" required maxlength="254" autocomplete="email"></p>
<fieldset><legend>Components (none ticked: all of them)</legend>
{% for c in components %}<label><input type="checkbox" name="components" value="{{ c.id }}"> {{ c.name }}</label>
{% endfor %}</fieldset>
<p><button type="submit">Subscribe</button></p>
<p class="meta">We mail you a link to confirm first: nothing else is sent until you use it. Every mail has an
unsubscribe link.</p>
</form>
</section>
{% endif %}
<section aria-labelledby="past-h"><h2 id="past-h">{{ "Incident history" if history else "Past incidents" }}</h2>
{% for i in past %}{{ incident(i) }}{% else %}<p>No incidents reported.</p>{% endfor %}
</section>
</main>
<footer role="contentinfo"><p class="meta">All times are UTC (Coordinated Universal Time). Updated
{{ updated }}. Also as <a href="{{ links.json }}">JSON</a>.</p></footer>
</body>
</html>
"""

INCIDENT = """<section class="incident" aria-labelledby="{{ i.id }}-h">
<h2 id="{{ i.id }}-h">{{ i.name }}</h2>
<p class="meta">Impact: {{ i.impact }}{% if i.components %} · Affects: {{ i.components }}{% endif %}</p>
{% for u in i.updates %}
<div class="upd"><p><strong>{{ u.status }}</strong> - {{ u.body }}</p>
<p class="meta"><time datetime="{{ u.iso }}">{{ u.when }}</time></p></div>
{% endfor %}
</section>
"""
