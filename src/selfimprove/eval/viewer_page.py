"""The static HTML/CSS/JS of the trajectory viewer (filled in by `selfimprove.eval.viewer`).

The page reads its data (`mode` list or compare, `runs`, `figures`, `episodes`, and in compare
mode `pairs`, `only_a`, `only_b`) from an inline `<script type="application/json">` block and
builds the DOM with `createElement` + `textContent` only: model text is never parsed as HTML. It
needs no network. On top, `#aggregates` holds a table of figures per run (`tr[data-metric]`,
`td[data-run]`, and `td.diff` for B - A). After rendering it writes `data-mode`, `data-rendered`
(episodes shown), `data-total` and `data-errors` (uncaught script errors) on `#viewer-status`, and
in compare mode `data-rows` (shared questions shown), `data-only-a` and `data-only-b`, so headless
tests can read the DOM.
A URL fragment such as `#correct=incorrect&level=hard&flag=step%20limit` presets the filters.
"""

STYLE = """
body{font-family:system-ui,sans-serif;margin:0;background:#f6f7f9;color:#1d2330}
header{position:sticky;top:0;background:#fff;border-bottom:1px solid #d8dce3;padding:10px 16px;z-index:1}
h1{font-size:18px;margin:0 0 8px}
.controls{display:flex;flex-wrap:wrap;gap:12px;align-items:center;font-size:13px}
.controls select,.controls input[type=search]{font-size:13px;padding:2px 4px}
#viewer-status{font-size:12px;color:#556}
main{padding:12px 16px}
.episode{background:#fff;border:1px solid #d8dce3;border-left:6px solid #c33;border-radius:6px;margin:0 0 12px;padding:10px 12px}
.episode.correct{border-left-color:#2a8a3e}
.meta{font-size:12px;color:#556;display:flex;flex-wrap:wrap;gap:8px;margin-bottom:4px}
.badge{background:#eef0f4;border-radius:10px;padding:1px 8px}
.badge.flag{background:#fde8c8}
.question{font-weight:600;margin:4px 0;overflow-wrap:anywhere}
.answers{font-size:13px;margin-bottom:6px;overflow-wrap:anywhere}
.step{border-top:1px dashed #d8dce3;padding:6px 0;font-size:13px}
.step .label{font-weight:600;color:#445;margin-right:6px}
.step pre{white-space:pre-wrap;word-break:break-word;margin:2px 0 2px 16px;font-family:ui-monospace,monospace;font-size:12px;background:#f3f4f7;padding:4px 6px;border-radius:4px}
details summary{cursor:pointer;font-size:13px;color:#335}
#aggregates{padding:12px 16px 0;overflow-x:auto}
table.figures{border-collapse:collapse;background:#fff;font-size:13px}
table.figures th,table.figures td{border:1px solid #d8dce3;padding:3px 10px;text-align:right;white-space:nowrap}
table.figures tr>th:first-child{text-align:left;font-weight:normal}
table.figures td.diff{font-weight:600}
.pair{background:#fff;border:1px solid #d8dce3;border-radius:6px;margin:0 0 14px;padding:10px 12px}
.sides{display:grid;grid-template-columns:minmax(0,1fr) minmax(0,1fr);gap:12px}
.side-head{font-weight:600;font-size:13px;padding:4px 8px;border-radius:4px}
.side-a .side-head{background:#cfe0ff}
.side-b .side-head{background:#ffd6ea}
.side .episode{margin:6px 0 0}
.only h2{font-size:15px;margin:16px 0 8px}
"""

SCRIPT = r"""
(function () {
  "use strict";
  var errors = 0;
  var MAX_RENDERED = 1000;
  var status = document.getElementById("viewer-status");
  window.addEventListener("error", function () {
    errors += 1;
    status.setAttribute("data-errors", String(errors));
  });
  var data = JSON.parse(document.getElementById("viewer-data").textContent);
  var episodes = data.episodes;
  var compare = data.mode === "compare";
  var SIDES = ["A", "B"];

  function el(tag, className, text) {
    var node = document.createElement(tag);
    if (className) { node.className = className; }
    if (text !== undefined && text !== null) { node.textContent = String(text); }
    return node;
  }

  function optionValues(select, values) {
    values.forEach(function (value) {
      var option = el("option", null, value);
      option.value = value;
      select.appendChild(option);
    });
  }

  function renderStep(step, index) {
    var box = el("div", "step");
    box.appendChild(el("span", "label", "Step " + (index + 1)));
    if (step.error) { box.appendChild(el("span", "badge flag", step.error)); }
    [["Thought", step.thought], ["Action", step.action], ["Observation", step.observation]].forEach(function (pair) {
      if (pair[1] === undefined || pair[1] === null || pair[1] === "") { return; }
      var row = el("div");
      row.appendChild(el("span", "label", pair[0]));
      row.appendChild(el("pre", null, pair[1]));
      box.appendChild(row);
    });
    if (step.raw) {
      var raw = el("details", "raw");
      raw.appendChild(el("summary", null, "raw model text"));
      raw.appendChild(el("pre", null, step.raw));
      box.appendChild(raw);
    }
    return box;
  }

  function renderEpisode(ep, compact) {
    var card = el("article", "episode" + (ep.correct ? " correct" : ""));
    card.setAttribute("data-correct", ep.correct ? "1" : "0");
    var meta = el("div", "meta");
    [ep.correct ? "correct" : "incorrect", "score " + ep.score, ep.level, ep.type, ep.model,
     ep.attempt === null || ep.attempt === undefined ? null : "attempt " + ep.attempt,
     compact ? null : ep.id, compact ? null : ep.source].forEach(function (text) {
      if (text !== null && text !== undefined && text !== "") { meta.appendChild(el("span", "badge", text)); }
    });
    ep.flags.forEach(function (flag) { meta.appendChild(el("span", "badge flag", flag)); });
    card.appendChild(meta);
    if (!compact) { card.appendChild(el("div", "question", ep.question)); }
    card.appendChild(el("div", "answers", "answer: " + (ep.answer === null ? "(none)" : ep.answer) +
                        (compact ? "" : "   |   gold: " + ep.gold)));
    if (ep.reflection) {
      var reflection = el("div", "step");
      reflection.appendChild(el("span", "label", "Reflection before this retry"));
      reflection.appendChild(el("pre", null, ep.reflection));
      card.appendChild(reflection);
    }
    var details = el("details");
    details.open = ep.steps.length <= 6;
    details.appendChild(el("summary", null, ep.steps.length + " step(s)"));
    ep.steps.forEach(function (step, i) { details.appendChild(renderStep(step, i)); });
    card.appendChild(details);
    return card;
  }

  function matches(ep, filters) {
    if (filters.correct === "correct" && !ep.correct) { return false; }
    if (filters.correct === "incorrect" && ep.correct) { return false; }
    if (filters.level && ep.level !== filters.level) { return false; }
    if (filters.model && ep.model !== filters.model) { return false; }
    if (filters.flag && ep.flags.indexOf(filters.flag) < 0) { return false; }
    if (filters.text && (ep.question + " " + ep.answer + " " + ep.gold).toLowerCase()
        .indexOf(filters.text.toLowerCase()) < 0) { return false; }
    return true;
  }

  var list = document.getElementById("episodes");
  var controls = {
    correct: document.getElementById("filter-correct"),
    level: document.getElementById("filter-level"),
    model: document.getElementById("filter-model"),
    flag: document.getElementById("filter-flag"),
    text: document.getElementById("filter-text"),
    rows: document.getElementById("filter-rows")
  };

  function readFilters() {
    var filters = {};
    Object.keys(controls).forEach(function (k) { filters[k] = controls[k].value; });
    return filters;
  }

  function render() {
    var filters = readFilters();
    while (list.firstChild) { list.removeChild(list.firstChild); }
    if (compare) { renderCompare(filters); } else { renderList(filters); }
  }

  function renderList(filters) {
    var shown = episodes.filter(function (ep) { return matches(ep, filters); });
    shown.slice(0, MAX_RENDERED).forEach(function (ep) { list.appendChild(renderEpisode(ep, false)); });
    var correct = shown.filter(function (ep) { return ep.correct; }).length;
    status.textContent = shown.length + " of " + episodes.length + " episodes match, " + correct + " correct" +
      (shown.length > MAX_RENDERED ? " (first " + MAX_RENDERED + " shown: narrow the filters)" : "");
    status.setAttribute("data-rendered", String(Math.min(shown.length, MAX_RENDERED)));
  }

  function sideOf(indices) {
    var eps = indices.map(function (i) { return episodes[i]; });
    var total = eps.reduce(function (sum, ep) { return sum + ep.score; }, 0);
    var correct = eps.filter(function (ep) { return ep.correct; }).length;
    return {episodes: eps, score: eps.length ? total / eps.length : 0, correct: correct};
  }

  function rowMatches(pair, filters) {
    var a = sideOf(pair.a), b = sideOf(pair.b);
    if (filters.rows === "differ" && a.score === b.score && a.correct === b.correct) { return false; }
    if (filters.rows === "a-better" && !(a.score > b.score)) { return false; }
    if (filters.rows === "b-better" && !(b.score > a.score)) { return false; }
    return a.episodes.concat(b.episodes).some(function (ep) { return matches(ep, filters); });
  }

  function renderSide(indices, side) {
    var info = sideOf(indices);
    var column = el("div", "side side-" + side.toLowerCase());
    column.setAttribute("data-side", side);
    column.appendChild(el("div", "side-head", side + ": " + data.runs[SIDES.indexOf(side)] + " \u00b7 score " +
                          Math.round(info.score * 1000) / 1000 + " \u00b7 " + info.correct + "/" +
                          info.episodes.length + " correct"));
    info.episodes.forEach(function (ep) { column.appendChild(renderEpisode(ep, true)); });
    return column;
  }

  function renderPair(pair) {
    var first = episodes[pair.a[0]];
    var box = el("section", "pair");
    box.setAttribute("data-id", pair.id);
    var meta = el("div", "meta");
    [pair.id, first.level, first.type].forEach(function (text) {
      if (text) { meta.appendChild(el("span", "badge", text)); }
    });
    box.appendChild(meta);
    box.appendChild(el("div", "question", first.question));
    box.appendChild(el("div", "answers", "gold: " + first.gold));
    var sides = el("div", "sides");
    sides.appendChild(renderSide(pair.a, "A"));
    sides.appendChild(renderSide(pair.b, "B"));
    box.appendChild(sides);
    return box;
  }

  function renderOnly(side, indices, filters) {
    var shown = indices.map(function (i) { return episodes[i]; }).filter(function (ep) { return matches(ep, filters); });
    var box = el("section", "only");
    box.id = "only-" + side.toLowerCase();
    box.appendChild(el("h2", null, "Only in " + side + " (" + data.runs[SIDES.indexOf(side)] + "): " +
                       shown.length + " of " + indices.length + " episodes"));
    shown.slice(0, MAX_RENDERED).forEach(function (ep) { box.appendChild(renderEpisode(ep, false)); });
    list.appendChild(box);
    return Math.min(shown.length, MAX_RENDERED);
  }

  function renderCompare(filters) {
    var rows = data.pairs.filter(function (pair) { return rowMatches(pair, filters); }).slice(0, MAX_RENDERED);
    var cards = 0;
    rows.forEach(function (pair) { list.appendChild(renderPair(pair)); cards += pair.a.length + pair.b.length; });
    var onlyA = renderOnly("A", data.only_a, filters), onlyB = renderOnly("B", data.only_b, filters);
    status.textContent = rows.length + " of " + data.pairs.length + " shared questions shown; only in A: " + onlyA +
      ", only in B: " + onlyB;
    status.setAttribute("data-rows", String(rows.length));
    status.setAttribute("data-rendered", String(cards + onlyA + onlyB));
  }

  function renderFigures() {
    var table = el("table", "figures");
    var head = el("tr");
    head.appendChild(el("th", null, "per run"));
    data.runs.forEach(function (label, i) {
      head.appendChild(el("th", null, (compare ? SIDES[i] + ": " : "") + (label || "all episodes")));
    });
    if (compare) { head.appendChild(el("th", null, "B \u2212 A")); }
    table.appendChild(head);
    data.figures.forEach(function (row) {
      var line = el("tr");
      line.setAttribute("data-metric", row.key);
      line.appendChild(el("th", null, row.label));
      row.cells.concat(compare ? [row.diff] : []).forEach(function (cell, i) {
        var td = el("td", i < row.cells.length ? null : "diff", cell);
        td.setAttribute("data-run", i < row.cells.length ? String(i) : "diff");
        line.appendChild(td);
      });
      table.appendChild(line);
    });
    document.getElementById("aggregates").appendChild(table);
  }

  function unique(key) {
    var seen = {};
    episodes.forEach(function (ep) {
      [].concat(ep[key]).forEach(function (v) { if (v) { seen[v] = true; } });
    });
    return Object.keys(seen).sort();
  }

  function applyHash() {
    // "#correct=incorrect&level=hard&flag=step%20limit&text=paris" presets the filters (shareable links).
    location.hash.replace(/^#/, "").split("&").forEach(function (pair) {
      var parts = pair.split("=");
      var control = controls[decodeURIComponent(parts[0] || "")];
      if (control && parts.length > 1) { control.value = decodeURIComponent(parts[1]); }
    });
  }

  optionValues(controls.level, unique("level"));
  optionValues(controls.model, unique("model"));
  optionValues(controls.flag, unique("flags"));
  applyHash();
  if (compare) {
    document.getElementById("rows-control").hidden = false;
    status.setAttribute("data-only-a", String(data.only_a.length));
    status.setAttribute("data-only-b", String(data.only_b.length));
  }
  status.setAttribute("data-mode", data.mode);
  renderFigures();
  ["change", "input"].forEach(function (evt) {
    Object.keys(controls).forEach(function (k) { controls[k].addEventListener(evt, render); });
  });
  status.setAttribute("data-total", String(episodes.length));
  render();
  status.setAttribute("data-errors", String(errors));
})();
"""

TEMPLATE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'">
<title>__TITLE__</title>
<style>__STYLE__</style>
</head>
<body>
<header>
<h1>__TITLE__</h1>
<div class="controls">
<label>Outcome <select id="filter-correct"><option value="">all</option><option value="correct">correct</option><option value="incorrect">incorrect</option></select></label>
<label>Level <select id="filter-level"><option value="">all</option></select></label>
<label>Model <select id="filter-model"><option value="">all</option></select></label>
<label>Flag <select id="filter-flag"><option value="">any</option></select></label>
<label>Search <input id="filter-text" type="search" placeholder="question / answer"></label>
<label id="rows-control" hidden>Rows <select id="filter-rows"><option value="">all shared</option><option value="differ">A and B differ</option><option value="a-better">A scores higher</option><option value="b-better">B scores higher</option></select></label>
<span id="viewer-status" data-rendered="0" data-errors="0">loading (needs JavaScript)</span>
</div>
</header>
<section id="aggregates"></section>
<main id="episodes"></main>
<script type="application/json" id="viewer-data">__DATA__</script>
<script>__SCRIPT__</script>
</body>
</html>
"""
