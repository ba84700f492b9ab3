"""The inline CSS and JavaScript of ``report.html`` (no external resource: it opens offline)."""

CSS = """
body { font: 14px/1.4 system-ui, sans-serif; margin: 1.5em; color: #222; }
h1 { font-size: 1.4em; } h2 { font-size: 1.15em; margin-top: 2em; border-bottom: 1px solid #ccc; }
table { border-collapse: collapse; }
td, th { border: 1px solid #ddd; padding: 3px 6px; vertical-align: top; }
th { background: #f4f4f4; }
table.metrics th { cursor: pointer; user-select: none; }
table.metrics th[aria-sort="ascending"]::after { content: " \\25B2"; }
table.metrics th[aria-sort="descending"]::after { content: " \\25BC"; }
table.metrics td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
td.best { font-weight: bold; background: #e6f4e6; }
td.links { white-space: nowrap; }
td.best::before { content: "\\2605 "; color: #2a7a2a; }
.unit { color: #666; font-weight: normal; font-size: 0.85em; }
.badge { display: inline-block; font-size: 0.72em; padding: 0 4px; border-radius: 3px; margin-left: 2px;
         font-weight: normal; white-space: nowrap; }
.release { background: #d9e8ff; color: #0b3d91; }
.evalonly { background: #eee; color: #444; }
.privatedata { background: #ffe0d6; color: #8a2b06; }
th.release { border-top: 3px solid #0b3d91; } th.evalonly { border-top: 3px solid #999; }
th.privatedata { border-top: 3px solid #c0451b; }
.scroll { overflow-x: auto; max-width: 100%; }
table.gallery td, table.gallery th { padding: 2px; text-align: center; }
table.gallery th.label, table.gallery td.label { text-align: left; position: sticky; left: 0;
    background: #fafafa; min-width: 12em; }
table.gallery img { width: 64px; height: 64px; image-rendering: pixelated; display: block; }
table.gallery th.prompt { font-size: 0.75em; font-weight: normal; max-width: 70px; }
figure { display: inline-block; margin: 0 1em 1em 0; } figure img { max-width: 100%; }
.status-failed { color: #b00020; } .status-skipped { color: #666; } .status-half-written { color: #a05a00; }
details { margin: 2px 0; } code { font-size: 0.9em; }
"""

# Sorts the metrics table by the clicked header: numbers numerically (data-v), missing
# values last in either direction; a second click reverses.
JS = """
(function () {
  function key(td) {
    if (!td) return null;
    var v = td.getAttribute('data-v');
    if (v === null || v === '') return null;
    var n = Number(v);
    return isNaN(n) ? v.toLowerCase() : n;
  }
  document.querySelectorAll('table.metrics').forEach(function (table) {
    var heads = table.querySelectorAll('thead th');
    heads.forEach(function (th, col) {
      th.addEventListener('click', function () {
        var asc = th.getAttribute('aria-sort') !== 'ascending';
        heads.forEach(function (h) { h.removeAttribute('aria-sort'); });
        th.setAttribute('aria-sort', asc ? 'ascending' : 'descending');
        var body = table.tBodies[0];
        var rows = Array.prototype.slice.call(body.rows);
        rows.sort(function (a, b) {
          var x = key(a.cells[col]), y = key(b.cells[col]);
          if (x === null && y === null) return 0;
          if (x === null) return 1;
          if (y === null) return -1;
          if (typeof x !== typeof y) { x = String(x); y = String(y); }
          return (x < y ? -1 : x > y ? 1 : 0) * (asc ? 1 : -1);
        });
        rows.forEach(function (r) { body.appendChild(r); });
      });
    });
  });
})();
"""
