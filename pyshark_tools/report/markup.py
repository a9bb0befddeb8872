"""Safe markup for the report page: escaping, cells and tables, inline figures, its CSS, script and CSP.

Every value that came from a capture goes through `esc()` (html.escape after making control
characters visible); markup is only ever built from escaped parts (`Raw`). The Content-Security-
Policy allows nothing from outside the page and only this module's own style and script (by
their sha256): no request can leave the machine when the page is opened, and markup that
slipped in could run nothing.
"""
from __future__ import annotations

import base64
import hashlib
import html
import re
from typing import Iterable, Sequence

import pandas as pd
from matplotlib.figure import Figure

from ..tables.write import strip_control
from .causes import CAUSES
from .palette import cause_colour
from .plots import to_bytes

CSS = """
body{font:15px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;color:#222;margin:0;background:#fafafa}
main{max-width:1360px;margin:0 auto;padding:1.2em 1.6em 3em}
h1{font-size:1.6em;margin:.4em 0 .1em}h2{font-size:1.25em;margin:1.8em 0 .5em;border-bottom:1px solid #ddd}
h3{font-size:1.05em;margin:1.2em 0 .4em}
.meta{color:#666;font-size:.9em}
.banner{background:#fdecea;border:2px solid #a50f00;color:#6d1a12;padding:.8em 1.6em;margin:0}
.banner strong{font-size:1.1em}.banner li{margin:.2em 0}
.headline{font-size:1.35em;margin:.6em 0}.headline .bad{color:#a50f00}.headline .good{color:#222}
.cards{display:flex;flex-wrap:wrap;gap:.8em;margin:.6em 0 1em}
.card{background:#fff;border:1px solid #ddd;border-radius:6px;padding:.5em 1em;min-width:9em}
.card .num{display:block;font-size:1.7em;font-weight:600}.card .lbl{color:#666;font-size:.85em}
table{border-collapse:collapse;background:#fff;margin:.4em 0 1em;font-size:.88em;width:100%}
table.narrow{width:auto;min-width:24em}
th,td{border:1px solid #ddd;padding:.3em .5em;text-align:left;vertical-align:top}
th{background:#f0f0f0}table.sortable th{white-space:nowrap}td.n{text-align:right;white-space:nowrap}
table.sortable th{cursor:pointer}table.sortable th::after{content:" \\2195";color:#aaa}
code{font:.92em ui-monospace,monospace;background:#f3f3f3;padding:0 .2em;border-radius:3px}
code.filter{user-select:all;cursor:copy}
td.nw{white-space:nowrap}td.ev{min-width:18em}
#failing-sessions{table-layout:fixed}#failing-sessions td{overflow-wrap:anywhere}
#failing-sessions th{white-space:normal}#failing-sessions td.nw{white-space:normal}
""" + "".join(f"#failing-sessions th:nth-child({i + 1}){{width:{w}%}}"
              for i, w in enumerate((7, 12, 22, 12, 6, 10, 4, 9, 18))) + """
td.where code{display:inline-block;margin:.1em 0}
img.fig{max-width:100%;height:auto;background:#fff;border:1px solid #eee;display:block;margin:.4em 0}
.sw{display:inline-block;width:.8em;height:.8em;border-radius:2px;margin-right:.35em;background:#808080;
vertical-align:-.05em;border:1px solid rgba(0,0,0,.25)}
[hidden]{display:none!important}.muted{color:#777}.more{background:#fff8e1;border-left:4px solid #ffa500;padding:.4em .8em}
.search{display:flex;gap:.6em;align-items:center;flex-wrap:wrap;margin:.6em 0}
.search input{font:inherit;padding:.3em .5em;min-width:24em;border:1px solid #999;border-radius:4px}
.up{color:#a50f00;font-weight:600}.new{font-weight:700}
nav.toc{position:sticky;top:0;background:#fafafa;border-bottom:1px solid #ddd;padding:.4em 0;z-index:1;font-size:.92em}
""" + "".join(f".sw-{c}{{background:{cause_colour(c)}}}" for c in CAUSES) + "\n"

# Sorting by a click on a column head; the failing sessions' search box (every word must occur in the row).
SCRIPT = (
    "document.querySelectorAll('table.sortable th').forEach(function(th){th.addEventListener('click',function(){"
    "var t=th.closest('table'),b=t.tBodies[0],i=th.cellIndex,d=th.dataset.dir==='asc'?-1:1;"
    "th.dataset.dir=d===1?'asc':'desc';Array.from(b.rows).sort(function(x,y){"
    "var p=x.cells[i],q=y.cells[i],u=p.dataset.sort!==undefined?p.dataset.sort:p.textContent,"
    "v=q.dataset.sort!==undefined?q.dataset.sort:q.textContent,m=parseFloat(u),n=parseFloat(v);"
    "if(!isNaN(m)&&!isNaN(n)&&p.dataset.sort!==undefined)return(m-n)*d;return u.localeCompare(v)*d;})"
    ".forEach(function(r){b.appendChild(r);});});});\n"
    "document.querySelectorAll('input[data-filter]').forEach(function(box){"
    "var t=document.getElementById(box.dataset.filter),out=document.getElementById(box.dataset.count);"
    "if(!t||!t.tBodies.length)return;var rows=Array.from(t.tBodies[0].rows),"
    "text=rows.map(function(r){return r.textContent.toLowerCase();});"
    "function run(){var words=box.value.toLowerCase().split(/\\s+/).filter(Boolean),n=0;"
    "rows.forEach(function(r,i){var show=words.every(function(w){return text[i].indexOf(w)>=0;});"
    "r.hidden=!show;if(show)n++;});"
    "if(out)out.textContent=(words.length?n+' of '+rows.length:rows.length)+' row'+(rows.length===1?'':'s')+' shown';}"
    "box.addEventListener('input',run);run();});"
)


def sha256_source(text: str) -> str:
    """The CSP source that allows exactly this inline style or script."""
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode() + "'"


CSP = (f"default-src 'none'; img-src data:; style-src {sha256_source(CSS)}; script-src {sha256_source(SCRIPT)}; "
       "base-uri 'none'; form-action 'none'")


class Raw(str):
    """Markup built here from escaped parts; `cell()` passes it through unescaped."""


def esc(value: object) -> str:
    """Any value as safe HTML text: lists joined, missing values empty, control characters shown as \\xNN."""
    if isinstance(value, (list, tuple)):
        value = ", ".join(map(str, value))
    elif value is None or (not isinstance(value, str) and pd.isna(value)):
        return ""
    return html.escape(strip_control(str(value)), quote=True)


_MD_SPECIAL = re.compile(r"([\\`*_\[\]()!|~>#+\-{}])")


def markdown_text(value: object) -> str:
    """Any value as inert Markdown text (a notebook's Markdown also renders HTML): HTML escaped, and
    every character that makes a link, image, emphasis, heading or list backslash-escaped."""
    text = esc(value).replace("\r", " ").replace("\n", " ")
    return _MD_SPECIAL.sub(r"\\\1", text)


def markdown_code(value: object) -> str:
    """Any value as a Markdown code span (shown literally: no link, image or HTML inside), on one line."""
    if isinstance(value, (list, tuple)):
        value = ", ".join(map(str, value))
    text = strip_control("" if value is None else str(value)).replace("\r", " ").replace("\n", " ")
    fence = "`" * (max((len(r) for r in re.findall(r"`+", text)), default=0) + 1)
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def code(value: object, cls: str = "") -> Raw:
    attrs = f' class="{cls}"' if cls else ""
    return Raw(f"<code{attrs}>{esc(value)}</code>")


def prose(text: str) -> Raw:
    """Our own advice text: escaped, with `backticks` shown as code."""
    return Raw(re.sub(r"`([^`]+)`", r"<code>\1</code>", esc(text)))


def swatch(cause: str) -> Raw:
    """A colour square (the plots' colour for known codes) and the code."""
    cls = f" sw-{cause}" if cause in CAUSES else ""
    breakable = esc(cause).replace("_", "_<wbr>")      # long codes wrap at their underscores
    return Raw(f'<span class="sw{cls}"></span><code>{breakable}</code>')


def cell(value: object, sort: object = None, numeric: bool = False, cls: str = "") -> str:
    body = value if isinstance(value, Raw) else esc(value)
    classes = " ".join(c for c in ("n" if numeric else "", cls) if c)
    attrs = f' class="{classes}"' if classes else ""
    if sort is not None:
        attrs += f' data-sort="{esc(sort)}"'
    return f"<td{attrs}>{body}</td>"


def table(headers: Sequence[str], rows: Iterable[Sequence[str]], table_id: str, sortable: bool = False,
          narrow: bool = False) -> str:
    """`rows` hold already-built <td> strings (from cell())."""
    head = "".join(f"<th>{esc(h)}</th>" for h in headers)
    body = "\n".join(f"<tr>{''.join(r)}</tr>" for r in rows)
    classes = " ".join(c for c in ("sortable" if sortable else "", "narrow" if narrow else "") if c)
    cls = f' class="{classes}"' if classes else ""
    return f'<table id="{table_id}"{cls}><thead><tr>{head}</tr></thead><tbody>\n{body}\n</tbody></table>'


def figure(fig: Figure, alt: str, fig_id: str) -> str:
    """The figure as an inline PNG (a data: URI, allowed by the CSP's img-src)."""
    png = to_bytes(fig, "png")
    w, h = (fig.get_size_inches() * fig.dpi).round().astype(int)
    data = base64.b64encode(png).decode("ascii")
    return f'<img class="fig" id="{fig_id}" alt="{esc(alt)}" width="{w}" height="{h}" src="data:image/png;base64,{data}">'


def search_box(table_id: str, what: str) -> str:
    """A search box that hides the rows of `table_id` not holding every word typed (the page's script)."""
    return (f'<p class="search"><label for="{table_id}-search">Search the {esc(what)}:</label>'
            f'<input type="search" id="{table_id}-search" data-filter="{table_id}" data-count="{table_id}-count" '
            f'placeholder="cause, address, HELO, reply code, file…" autocomplete="off" spellcheck="false">'
            f'<span class="muted" id="{table_id}-count"></span></p>')

