"""The viewer's pages as pure functions from plain records to HTML text.

Nothing here reads files or the clock, so equal records give equal bytes. Paths in the records are
relative to the site root; recording pages live one folder down and prefix them with ``../``.
Script and style are written into every page (no CDN, no network), so a page works from file://.
"""

from __future__ import annotations

from dataclasses import dataclass
from html import escape

PAGE_SIZE = 200  # pairs per recording page: a full Sub-URMP recording has up to ~2,500


@dataclass(frozen=True)
class PairView:
    id: str
    split: str
    class_name: str
    recording: str
    t_start: float
    t_end: float
    note_coverage: float
    mean_f0: float
    silent: bool
    image: str  # site-relative paths
    thumb: str
    audio: str
    lms: str


@dataclass(frozen=True)
class GroupSummary:
    """One (class, split) row of the overview."""

    class_name: str
    split: str
    n_pairs: int
    n_recordings: int
    n_silent: int


@dataclass(frozen=True)
class RecordingSummary:
    recording: str
    class_name: str
    split: str
    n_pairs: int
    n_silent: int
    n_pages: int


def page_file(recording: str, page: int) -> str:
    """File name of a recording's page (1-based), in the site's ``rec/`` folder."""
    return f"{recording}-{page:03d}.html"


def page_href(recording: str, page: int) -> str:
    """Site-relative path of a recording's page."""
    return f"rec/{page_file(recording, page)}"


STYLE = """
body{font-family:system-ui,sans-serif;margin:1.5em;color:#222;background:#fafafa}
h1{font-size:1.4em}h2{font-size:1.15em;margin-top:1.5em}
table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ccc;padding:.2em .6em;text-align:right}
th{background:#eee}td.l,th.l{text-align:left}
.filters{position:sticky;top:0;background:#fafafa;padding:.5em 0;border-bottom:1px solid #ddd;z-index:1}
.filters label{margin-right:1em}
.grid{display:flex;flex-wrap:wrap;gap:.6em}
.pair{background:#fff;border:1px solid #ddd;border-radius:4px;padding:.4em;font-size:.8em;width:300px}
.pair.silent{background:#f1f1f1}.pair.playing{outline:3px solid #f80}
.pair .media{display:flex;gap:.3em;align-items:flex-end}.pair img{display:block;max-height:128px}
.pair audio{width:100%;margin-top:.3em}
.pair.thumb{width:auto;text-align:center;font-size:.75em}.thumb img{display:block;height:96px}
.nav a{margin-right:1em}.muted{color:#777}
"""

SCRIPT = """
function applyFilters(){
  var f={class:val('f-class'),split:val('f-split'),silent:val('f-silent')},n=0;
  document.querySelectorAll('[data-class]').forEach(function(e){
    var ok=(!f.class||e.dataset.class===f.class)&&(!f.split||e.dataset.split===f.split)&&
           (!f.silent||e.dataset.silent===f.silent);
    e.style.display=ok?'':'none';if(ok&&e.classList.contains('pair'))n++;});
  var c=document.getElementById('n-visible');if(c)c.textContent=n;
}
function val(id){var e=document.getElementById(id);return e?e.value:'';}
function playInOrder(){
  // Windows overlap (hop < window): play each next window that starts after the last one ends.
  var queue=[],end=-1;
  document.querySelectorAll('.pair').forEach(function(p){
    if(p.style.display==='none')return;var t0=parseFloat(p.dataset.t0);
    if(t0>=end-1e-6){queue.push(p);end=parseFloat(p.dataset.t1);}});
  var i=0;
  function next(){
    document.querySelectorAll('.pair.playing').forEach(function(p){p.classList.remove('playing');});
    if(i>=queue.length){var n=document.getElementById('next');if(n)location.href=n.href+'#play';return;}
    var p=queue[i++],a=p.querySelector('audio');p.classList.add('playing');
    p.scrollIntoView({block:'nearest'});a.onended=next;a.currentTime=0;
    var r=a.play();if(r&&r.catch)r.catch(function(){});
  }
  next();
}
document.addEventListener('DOMContentLoaded',function(){
  document.querySelectorAll('.filters select').forEach(function(s){s.addEventListener('change',applyFilters);});
  var b=document.getElementById('play');if(b)b.addEventListener('click',playInOrder);
  applyFilters();if(location.hash==='#play'&&b)playInOrder();
});
"""


def _document(title: str, body: list[str]) -> str:
    return "\n".join([
        "<!DOCTYPE html>", '<html lang="en">', "<head>", '<meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        # An empty icon: without it the browser asks the server for /favicon.ico.
        '<link rel="icon" href="data:,">', f"<title>{escape(title)}</title>", f"<style>{STYLE}</style>", f"<script>{SCRIPT}</script>",
        "</head>", "<body>", *body, "</body>", "</html>", "",
    ])


def _select(id_: str, label: str, options: list[tuple[str, str]]) -> str:
    opts = "".join(f'<option value="{escape(v)}">{escape(t)}</option>' for v, t in [("", "all"), *options])
    return f'<label>{escape(label)} <select id="{id_}">{opts}</select></label>'


def _filters(classes: list[str], splits: list[str], extra: str = "") -> str:
    return ('<div class="filters">'
            + _select("f-class", "class", [(c, c) for c in classes])
            + _select("f-split", "split", [(s, s) for s in splits])
            + _select("f-silent", "silent", [("false", "not silent"), ("true", "silent")])
            + f'<span class="muted"><span id="n-visible"></span> pairs shown</span>{extra}</div>')


def _data(pair: PairView) -> str:
    return (f'data-class="{escape(pair.class_name)}" data-split="{escape(pair.split)}" '
            f'data-silent="{str(pair.silent).lower()}" data-id="{escape(pair.id)}"')


def _share(k: int, n: int) -> str:
    return f"{100 * k / n:.1f}%" if n else "-"


def overview_page(title: str, groups: list[GroupSummary], recordings: list[RecordingSummary],
                  samples: list[PairView], note: str = "") -> str:
    """The site's index.html: counts per class and split, a few thumbnails, every recording."""
    classes = sorted({g.class_name for g in groups})
    splits = sorted({g.split for g in groups})
    n_pairs = sum(g.n_pairs for g in groups)
    rows = ['<table id="counts"><tr><th class="l">class</th><th class="l">split</th><th>pairs</th>'
            "<th>recordings</th><th>silent</th></tr>"]
    for g in groups:
        rows.append(f'<tr data-class="{escape(g.class_name)}" data-split="{escape(g.split)}" data-silent="">'
                    f'<td class="l">{escape(g.class_name)}</td><td class="l">{escape(g.split)}</td>'
                    f"<td>{g.n_pairs}</td><td>{g.n_recordings}</td><td>{_share(g.n_silent, g.n_pairs)}</td></tr>")
    rows.append(f'<tr><th class="l" colspan="2">total</th><th>{n_pairs}</th>'
                f"<th>{sum(g.n_recordings for g in groups)}</th>"
                f"<th>{_share(sum(g.n_silent for g in groups), n_pairs)}</th></tr></table>")
    thumbs = ['<div class="grid" id="samples">']
    for p in samples:
        thumbs.append(f'<a class="pair thumb" {_data(p)} href="{escape(page_href(p.recording, 1))}" '
                      f'title="{escape(p.id)}"><img src="{escape(p.thumb)}" alt="{escape(p.id)}">'
                      f"{escape(p.id)}</a>")
    thumbs.append("</div>")
    recs = ['<table id="recordings"><tr><th class="l">recording</th><th class="l">class</th>'
            '<th class="l">split</th><th>pairs</th><th>silent</th><th>pages</th></tr>']
    for r in recordings:
        recs.append(f'<tr data-class="{escape(r.class_name)}" data-split="{escape(r.split)}" data-silent="">'
                    f'<td class="l"><a href="{escape(page_href(r.recording, 1))}">{escape(r.recording)}</a></td>'
                    f'<td class="l">{escape(r.class_name)}</td><td class="l">{escape(r.split)}</td>'
                    f"<td>{r.n_pairs}</td><td>{_share(r.n_silent, r.n_pairs)}</td><td>{r.n_pages}</td></tr>")
    recs.append("</table>")
    body = [f"<h1>{escape(title)}</h1>",
            f'<p>{n_pairs} pairs in {len(recordings)} recordings. {escape(note)}</p>' if note
            else f"<p>{n_pairs} pairs in {len(recordings)} recordings.</p>",
            _filters(classes, splits), "<h2>Pairs per class and split</h2>", *rows,
            "<h2>A few pairs of each class and split</h2>", *thumbs,
            "<h2>Recordings</h2>", *recs]
    return _document(title, body)


def _pair_card(p: PairView) -> str:
    f0 = f"{p.mean_f0:.1f} Hz" if p.mean_f0 > 0 else "unvoiced"
    return "".join([
        f'<div class="pair{" silent" if p.silent else ""}" {_data(p)} data-t0="{p.t_start:.6f}" data-t1="{p.t_end:.6f}">',
        f"<b>{escape(p.id)}</b>",
        '<div class="media">',
        f'<a href="../{escape(p.image)}"><img src="../{escape(p.thumb)}" alt="image of {escape(p.id)}"></a>',
        f'<img src="../{escape(p.lms)}" alt="log-mel spectrogram of {escape(p.id)}" title="log-mel spectrogram, dB from the floor (dark) to full scale">',
        "</div>",
        f'<audio controls preload="metadata" src="../{escape(p.audio)}"></audio>',
        f"<div>{p.t_start:.3f}-{p.t_end:.3f} s · notes {100 * p.note_coverage:.0f}% · F0 {f0}"
        f"{' · <b>silent</b>' if p.silent else ''}</div>",
        "</div>",
    ])


def recording_page(title: str, rec: RecordingSummary, pairs: list[PairView], page: int) -> str:
    """One page (1-based ``page`` of ``rec.n_pages``) of a recording's pairs, in time order."""
    nav = ['<p class="nav"><a href="../index.html">overview</a>']
    if page > 1:
        nav.append(f'<a id="prev" href="{escape(page_file(rec.recording, page - 1))}">previous page</a>')
    if page < rec.n_pages:
        nav.append(f'<a id="next" href="{escape(page_file(rec.recording, page + 1))}">next page</a>')
    nav.append(f"page {page} of {rec.n_pages}</p>")
    play = (' <button id="play" title="Plays the shown pairs whose windows do not overlap, so the recording '
            'is heard once, then goes on to the next page">play this recording\'s pairs in order</button>')
    body = [f"<h1>{escape(rec.recording)} · {escape(rec.class_name)} · {escape(rec.split)}</h1>",
            f'<p>{rec.n_pairs} pairs ({_share(rec.n_silent, rec.n_pairs)} silent); this page: pairs '
            f"{escape(pairs[0].id)} to {escape(pairs[-1].id)}.</p>" if pairs else "<p>No pairs.</p>",
            "".join(nav), _filters([rec.class_name], [rec.split], play),
            '<div class="grid" id="pairs">', *(_pair_card(p) for p in pairs), "</div>", "".join(nav)]
    return _document(f"{rec.recording} ({page}/{rec.n_pages}) · {title}", body)
