// tk HTML report: sortable, filterable tables; graphs laid out in the page, with pan/zoom; a graph
// node click shows its row. Plain JavaScript and no network. Numbers sort by each cell's data-v (the
// raw value from the record); the shown text is formatted by tk. Each graph box (.tk-graph) names,
// in data-dot, the <pre> holding its DOT source; Viz.js (Graphviz built to WebAssembly, inlined
// before this script as the global Viz) lays it out as SVG. <body data-ready="1"> once all are done.
// A graph opens fitted in its box. The wheel zooms it only while it has the focus (a click on it
// gives it; it is a tabindex=0 box): elsewhere the wheel scrolls the page. A node click selects the
// node and its table row, scrolling only the table's own box, never the page.
// A measured-run selector (select.tk-run-select) shows one run's [data-run] elements of its section.
(function () {
  "use strict";

  function cellKey(row, col, numeric) {
    var cell = row.cells[col];
    if (!cell) return numeric ? -Infinity : "";
    if (numeric) {
      var v = cell.getAttribute("data-v");
      return v === null || v === "" ? -Infinity : parseFloat(v);
    }
    var t = cell.getAttribute("data-v");
    return (t === null ? cell.textContent : t).toLowerCase();
  }

  function sortTable(table, col, th) {
    var body = table.tBodies[0];
    var numeric = th.classList.contains("num");
    var ascending = th.getAttribute("aria-sort") !== "ascending";
    Array.prototype.forEach.call(table.tHead.rows[0].cells, function (c) {
      if (c.classList.contains("sortable")) c.setAttribute("aria-sort", "none");
    });
    th.setAttribute("aria-sort", ascending ? "ascending" : "descending");
    var rows = Array.prototype.slice.call(body.rows).map(function (r, i) {
      return { row: r, key: cellKey(r, col, numeric), i: i };
    });
    rows.sort(function (a, b) {
      var d = a.key < b.key ? -1 : a.key > b.key ? 1 : 0;
      return (ascending ? d : -d) || a.i - b.i;
    });
    var frag = document.createDocumentFragment();
    rows.forEach(function (x) { frag.appendChild(x.row); });
    body.appendChild(frag);
  }

  function applyFilter(table, text, counter) {
    var q = text.trim().toLowerCase();
    var shown = 0, rows = table.tBodies[0].rows;
    for (var i = 0; i < rows.length; i++) {
      var keep = !q || rows[i].textContent.toLowerCase().indexOf(q) !== -1;
      rows[i].hidden = !keep;
      if (keep) shown++;
    }
    if (counter) counter.textContent = shown + " of " + rows.length + " rows";
  }

  function setupTables() {
    document.querySelectorAll("table.tk-table").forEach(function (table) {
      Array.prototype.forEach.call(table.tHead.rows[0].cells, function (th, col) {
        th.classList.add("sortable");
        th.setAttribute("aria-sort", "none");
        th.title = "click to sort";
        th.addEventListener("click", function () { sortTable(table, col, th); });
      });
    });
    document.querySelectorAll("input.tk-filter").forEach(function (input) {
      var table = document.getElementById(input.getAttribute("data-table"));
      var counter = input.parentNode.querySelector(".count");
      input.addEventListener("input", function () { applyFilter(table, input.value, counter); });
      applyFilter(table, "", counter);
    });
  }

  function showRow(section, nodeId, nodeEl) {
    section.querySelectorAll("tr.tk-hl").forEach(function (r) { r.classList.remove("tk-hl"); });
    section.querySelectorAll("g.node.tk-selected").forEach(function (g) { g.classList.remove("tk-selected"); });
    if (nodeEl) nodeEl.classList.add("tk-selected");
    var row = section.querySelector('tr[data-node="' + CSS.escape(nodeId) + '"]');
    var out = section.querySelector(".selected-row");
    if (!row) {
      if (out) out.textContent = "node " + nodeId + ": no table row";
      return null;
    }
    var table = row.closest("table");
    var input = section.querySelector('input.tk-filter[data-table="' + table.id + '"]');
    if (row.hidden && input) {  // the filter hides it: clear the filter
      input.value = "";
      applyFilter(table, "", input.parentNode.querySelector(".count"));
    }
    row.classList.add("tk-hl");
    var wrap = row.closest(".table-wrap");
    if (wrap) {  // scroll the table's own box to the row; the page stays where it is
      var r = row.getBoundingClientRect(), w = wrap.getBoundingClientRect();
      wrap.scrollTop += r.top - w.top - (wrap.clientHeight - r.height) / 2;
    }
    if (out) {
      var heads = table.tHead.rows[0].cells;
      out.textContent = Array.prototype.filter.call(row.cells, function (c) { return !c.hidden; })
        .map(function (c) {
          return heads[c.cellIndex].textContent.replace(/\s+$/, "") + ": " + c.textContent;
        }).join(" \u00b7 ");
    }
    return row;
  }

  function setupGraph(box) {
    var svg = box.querySelector("svg");
    if (!svg) return;
    var section = box.closest("section");
    var vb = svg.viewBox.baseVal;
    var whole = [vb.x, vb.y, vb.width, vb.height];
    svg.removeAttribute("width");
    svg.removeAttribute("height");
    svg.setAttribute("preserveAspectRatio", "xMidYMid meet");
    // Open fitted: the whole graph in the box (zoom in from there), never an empty corner of it.
    function show(v) { vb.x = v[0]; vb.y = v[1]; vb.width = v[2]; vb.height = v[3]; }
    show(whole);

    function point(evt) {
      var p = svg.createSVGPoint();
      p.x = evt.clientX; p.y = evt.clientY;
      return p.matrixTransform(svg.getScreenCTM().inverse());
    }
    function zoom(factor, center) {
      var c = center || { x: vb.x + vb.width / 2, y: vb.y + vb.height / 2 };
      vb.x = c.x - (c.x - vb.x) * factor;
      vb.y = c.y - (c.y - vb.y) * factor;
      vb.width *= factor;
      vb.height *= factor;
    }
    function focused() { return box.contains(document.activeElement); }
    svg.addEventListener("wheel", function (evt) {
      if (!focused()) return;  // the page scrolls; click the graph first to zoom it
      evt.preventDefault();
      zoom(evt.deltaY < 0 ? 0.8 : 1.25, point(evt));
    }, { passive: false });
    var drag = null, moved = false;
    svg.addEventListener("mousedown", function (evt) {
      box.focus({ preventScroll: true });
      evt.preventDefault();  // no text selection, and no focus change that could scroll the page
      drag = point(evt); moved = false; svg.classList.add("dragging");
    });
    window.addEventListener("mousemove", function (evt) {
      if (!drag) return;
      var p = point(evt);
      if (Math.abs(p.x - drag.x) + Math.abs(p.y - drag.y) > 1) moved = true;
      vb.x -= p.x - drag.x;
      vb.y -= p.y - drag.y;
    });
    window.addEventListener("mouseup", function () { drag = null; svg.classList.remove("dragging"); });
    box.querySelectorAll("button[data-zoom]").forEach(function (b) {
      b.addEventListener("click", function () {
        var z = b.getAttribute("data-zoom");
        if (z === "fit") show(whole);
        else zoom(parseFloat(z));
      });
    });
    svg.querySelectorAll("g.node").forEach(function (g) {
      g.addEventListener("click", function (evt) {
        if (moved) return;  // the end of a pan, not a click
        evt.preventDefault();
        showRow(section, g.id, g);
      });
    });
  }

  function setupRowLinks() {
    // A table row that names a graph node: double-click selects that node in its section's graph.
    document.querySelectorAll("section.inv").forEach(function (section) {
      section.querySelectorAll("tr[data-node]").forEach(function (row) {
        row.addEventListener("dblclick", function () {
          var id = row.getAttribute("data-node");
          section.querySelectorAll("g.node.tk-selected").forEach(function (g) { g.classList.remove("tk-selected"); });
          var node = section.querySelector('.tk-graph g.node[id="' + CSS.escape(id) + '"]');
          if (node) node.classList.add("tk-selected");
        });
      });
    });
  }

  function graphStatus(box, text) {
    var note = box.querySelector(".graph-status");
    if (note) note.textContent = text;
  }

  function drawGraph(viz, box) {
    var source = document.getElementById(box.getAttribute("data-dot"));
    var svg;
    try {
      svg = viz.renderSVGElement(source.textContent);
    } catch (err) {
      graphStatus(box, "graph not laid out: " + (err && err.message ? err.message : err));
      return;
    }
    var note = box.querySelector(".graph-status");
    if (note) note.parentNode.removeChild(note);
    box.appendChild(svg);
    setupGraph(box);
  }

  function nextTask() {  // let the page paint and respond between two layouts
    return new Promise(function (resolve) { setTimeout(resolve, 0); });
  }

  function layoutGraphs() {
    var boxes = Array.prototype.slice.call(document.querySelectorAll(".tk-graph[data-dot]"));
    if (!boxes.length) return Promise.resolve();
    if (typeof Viz === "undefined") {
      boxes.forEach(function (box) { graphStatus(box, "graph not laid out: the layout script (Viz.js) is missing"); });
      return Promise.resolve();
    }
    return Viz.instance().then(function (viz) {
      return boxes.reduce(function (done, box) {
        return done.then(nextTask).then(function () { drawGraph(viz, box); });
      }, Promise.resolve());
    }, function (err) {
      boxes.forEach(function (box) { graphStatus(box, "graph not laid out: " + err); });
    });
  }

  function setupRunSelectors() {
    document.querySelectorAll("select.tk-run-select").forEach(function (select) {
      var section = select.closest("section");
      select.addEventListener("change", function () {
        section.querySelectorAll("[data-run]").forEach(function (el) {
          el.hidden = el.getAttribute("data-run") !== select.value;
        });
      });
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    setupTables();
    setupRunSelectors();
    setupRowLinks();
    layoutGraphs().then(function () { document.body.setAttribute("data-ready", "1"); });
  });
})();
