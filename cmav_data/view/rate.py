"""The blind rating page of a run (``rate.html``) and its hidden key (``rate_key.json``).

The paper's human evaluation had raters score generated images on a fixed scale (real images
scored highest, then S2I-C). This makes it repeatable: real and generated samples of every variant
are shuffled (seeded) under opaque item ids, so the page names no variant and no source file (the
media are inlined as data URIs: the page is one file a rater can be sent). The key that maps item
ids back to variants is written beside it. The page keeps a rater's scores in the browser
(localStorage, per page id) and exports them as CSV (``page,rater,item,score``); ``cmav-bench
ratings RUN CSV...`` joins those files with the key (``cmav_models.ratings``).

Sounds (I2S) are rated the same way with audio players. The scale is cmav's (the paper's own
wording could not be retrieved): 1 to 5, stated on the page and recorded in the key.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import random
from dataclasses import dataclass
from html import escape
from pathlib import Path

from cmav_data.atomic import write_text

PAGE_NAME = "rate.html"
KEY_NAME = "rate_key.json"
KEY_FORMAT = "cmav-rate-key"
KINDS = ("image", "audio")
MIME = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".wav": "audio/wav"}
SCALE = {
    "image": {1: "not recognisable as a person playing an instrument", 2: "poor: barely recognisable",
              3: "fair: player and instrument recognisable, with clear flaws", 4: "good: small flaws only",
              5: "cannot be told from a real frame of a performance"},
    "audio": {1: "does not sound like an instrument", 2: "poor: barely like an instrument",
              3: "fair: an instrument, with clear artefacts", 4: "good: small artefacts only",
              5: "cannot be told from a real recording"},
}


class RatePageError(ValueError):
    """A sample that cannot be put on the page; ``str`` names the file and the cause."""


@dataclass(frozen=True)
class RatingSample:
    """One sample to rate: a file (PNG/JPEG image or WAV sound), its variant ("real" or a model's
    name, never shown) and its kind ("image" or "audio")."""

    path: str
    variant: str
    kind: str


def _data_uri(path: Path) -> str:
    mime = MIME.get(path.suffix.lower())
    if mime is None:
        raise RatePageError(f"{path}: not a rateable sample (PNG, JPEG or WAV expected)")
    try:
        data = path.read_bytes()
    except OSError as e:
        raise RatePageError(f"{path}: cannot read ({e.strerror or e})") from None
    return f"data:{mime};base64,{base64.b64encode(data).decode()}"


STYLE = """
body{font-family:system-ui,sans-serif;margin:1.5em;color:#222;background:#fafafa;max-width:70em}
.bar{position:sticky;top:0;background:#fafafa;padding:.5em 0;border-bottom:1px solid #ddd}
.items{display:flex;flex-wrap:wrap;gap:.8em}.item{background:#fff;border:1px solid #ddd;padding:.5em;border-radius:4px}
.item.done{border-color:#4a4}.item img{display:block;height:128px;image-rendering:pixelated}
.item label{margin-right:.4em}table.scale td{padding:.1em .6em}
"""

SCRIPT = """
var PAGE=document.documentElement.dataset.page,STORE='cmav-rate:'+PAGE;
function load(){try{return JSON.parse(localStorage.getItem(STORE))||{scores:{},rater:''};}
  catch(e){return {scores:{},rater:''};}}
function save(s){localStorage.setItem(STORE,JSON.stringify(s));}
function refresh(){
  var s=load(),items=document.querySelectorAll('.item'),n=0;
  items.forEach(function(it){var v=s.scores[it.dataset.item];
    it.querySelectorAll('input').forEach(function(r){r.checked=(String(v)===r.value);});
    it.classList.toggle('done',v!==undefined);if(v!==undefined)n++;});
  document.getElementById('n-rated').textContent=n+' of '+items.length+' rated';
  document.getElementById('rater').value=s.rater;
}
function csv(){
  var s=load(),rows=['page,rater,item,score'];
  document.querySelectorAll('.item').forEach(function(it){var v=s.scores[it.dataset.item];
    if(v!==undefined)rows.push([PAGE,'"'+s.rater.replace(/"/g,'""')+'"',it.dataset.item,v].join(','));});
  return rows.join('\\n')+'\\n';
}
function exportCsv(){
  var s=load();if(!s.rater){alert('Please type your name or an alias first.');return;}
  var a=document.createElement('a');a.href=URL.createObjectURL(new Blob([csv()],{type:'text/csv'}));
  a.download='ratings-'+s.rater.replace(/[^A-Za-z0-9_-]/g,'_')+'.csv';document.body.appendChild(a);a.click();a.remove();
}
document.addEventListener('DOMContentLoaded',function(){
  document.querySelectorAll('.item input').forEach(function(r){r.addEventListener('change',function(){
    var s=load();s.scores[r.name]=parseInt(r.value,10);save(s);refresh();});});
  document.getElementById('rater').addEventListener('input',function(e){var s=load();s.rater=e.target.value;save(s);});
  document.getElementById('export').addEventListener('click',exportCsv);
  document.getElementById('clear').addEventListener('click',function(){
    if(confirm('Forget every score given on this page?')){localStorage.removeItem(STORE);refresh();}});
  refresh();
});
"""


def _item_html(item: str, kind: str, uri: str) -> str:
    media = (f'<img src="{uri}" alt="sample {item}">' if kind == "image"
             else f'<audio controls preload="metadata" src="{uri}"></audio>')
    radios = "".join(f'<label><input type="radio" name="{item}" value="{k}">{k}</label>' for k in SCALE[kind])
    return f'<div class="item" data-item="{item}" data-kind="{kind}"><b>{item}</b>{media}<div>{radios}</div></div>'


def rating_page(items: list[tuple[str, str, str]], page_id: str, title: str = "Rate these samples") -> str:
    """The page's HTML for ``(item id, kind, data URI)`` in display order (pure)."""
    body = []
    for kind in KINDS:
        shown = [(i, u) for i, k, u in items if k == kind]
        if not shown:
            continue
        what = "image" if kind == "image" else "sound"
        scale = "".join(f"<tr><td><b>{k}</b></td><td>{escape(text)}</td></tr>" for k, text in SCALE[kind].items())
        body += [f"<h2>{'Images' if kind == 'image' else 'Sounds'} ({len(shown)})</h2>",
                 f"<p>Score each {what} on this fixed scale (some are real, some generated; they are in random order):</p>",
                 f'<table class="scale">{scale}</table>', '<div class="items">',
                 *(_item_html(i, kind, u) for i, u in shown), "</div>"]
    return "\n".join([
        "<!DOCTYPE html>", f'<html lang="en" data-page="{page_id}">', "<head>", '<meta charset="utf-8">',
        '<link rel="icon" href="data:,">', f"<title>{escape(title)}</title>", f"<style>{STYLE}</style>",
        f"<script>{SCRIPT}</script>", "</head>", "<body>", f"<h1>{escape(title)}</h1>",
        "<p>Your scores stay in this browser (you can close the page and come back). When done, type your "
        "name or an alias and export them as a CSV file; send that file back.</p>",
        '<div class="bar"><label>rater <input id="rater" autocomplete="off"></label> '
        '<button id="export">export my scores (CSV)</button> <button id="clear">forget my scores</button> '
        '<span id="n-rated"></span></div>',
        *body, "</body>", "</html>", "",
    ])


def write_rating_page(out_dir: str | os.PathLike, samples: list[RatingSample], seed: int = 0,
                      title: str = "Rate these samples") -> tuple[Path, Path]:
    """Write ``rate.html`` and ``rate_key.json`` into ``out_dir`` (a run folder); returns both paths.

    Same samples and seed give the same bytes. Source paths are recorded in the key relative to
    ``out_dir`` when they lie under it.
    """
    out = Path(out_dir)
    for s in samples:
        if s.kind not in KINDS:
            raise RatePageError(f"{s.path}: kind must be one of {KINDS}, not {s.kind!r}")
    if not samples:
        raise RatePageError(f"{out}: no samples to rate")
    ordered = sorted(samples, key=lambda s: (s.kind, s.variant, str(s.path)))
    uris = [_data_uri(Path(s.path)) for s in ordered]
    order = list(range(len(ordered)))
    random.Random(seed).shuffle(order)
    width = len(str(len(order)))
    items = []
    for n, i in enumerate(order, start=1):
        items.append((f"s{n:0{width}d}", ordered[i], uris[i]))
    # The page id names this exact set and order, so ratings of another page are never joined with this key.
    page_id = hashlib.sha256(json.dumps([[item, s.kind, uri] for item, s, uri in items]).encode()).hexdigest()[:16]
    page = rating_page([(item, s.kind, uri) for item, s, uri in items], page_id, title)

    def rel(path: str) -> str:
        p = Path(path).resolve()
        return str(p.relative_to(out.resolve())) if p.is_relative_to(out.resolve()) else str(p)

    key = {"format": KEY_FORMAT, "version": 1, "page": page_id, "seed": seed,
           "scale": {k: {str(v): t for v, t in s.items()} for k, s in SCALE.items()},
           "items": [{"item": item, "variant": s.variant, "kind": s.kind, "source": rel(s.path)}
                     for item, s, _uri in items]}
    write_text(out / KEY_NAME, json.dumps(key, indent=2, sort_keys=True) + "\n")
    write_text(out / PAGE_NAME, page)
    return out / PAGE_NAME, out / KEY_NAME
