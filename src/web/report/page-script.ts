/*
 * The script the report page runs (plain ES2019, no imports): reads the embedded JSON and draws
 * each chart with Chart.js (inlined before it). Kept as text because it runs in the browser, not
 * here; report-browser.test.ts runs it in Chromium and fails on any console or page error.
 * Animation is off so a chart is complete as soon as it is created (the test reads the pixels).
 */
export const PAGE_SCRIPT = String.raw`
(function () {
  'use strict';
  var data = JSON.parse(document.getElementById('qk-report-data').textContent);
  var PALETTE = ['#1f77b4', '#d62728', '#2ca02c', '#ff7f0e', '#9467bd', '#8c564b', '#e377c2',
    '#7f7f7f', '#bcbd22', '#17becf', '#393b79', '#637939', '#8c6d31', '#843c39', '#7b4173', '#3182bd'];
  var GRID_COLORS = ['rgba(31,119,180,0.45)', 'rgba(214,39,40,0.9)', 'rgba(44,160,44,0.9)', 'rgba(255,127,14,0.9)'];
  Chart.defaults.animation = false;
  Chart.defaults.responsive = true;
  Chart.defaults.maintainAspectRatio = false;
  Chart.defaults.font.size = 11;
  window.qkCharts = [];

  function el(id) { return document.getElementById(id); }
  function make(id, config) {
    var canvas = el(id);
    if (!canvas) return null;
    var chart = new Chart(canvas, config);
    window.qkCharts.push(chart);
    return chart;
  }
  // zeroAsGap: a log axis cannot show 0, so empty bins become gaps there.
  function binCenters(h, zeroAsGap) {
    var n = h.counts.length, w = (h.max - h.min) / n, out = [];
    for (var i = 0; i < n; i++) out.push({ x: h.min + (i + 0.5) * w, y: zeroAsGap && h.counts[i] === 0 ? null : h.counts[i] });
    return out;
  }
  function shortName(name) { return name.length > 28 ? '…' + name.slice(name.length - 27) : name; }

  // Vertical lines at given x values (quantization levels, calibration thresholds), drawn over the
  // datasets; chart.options.plugins.qkLines = [{ color, dash, xs: [...] , label }].
  var linesPlugin = {
    id: 'qkLines',
    afterDatasetsDraw: function (chart) {
      var sets = chart.options.plugins.qkLines || [];
      var x = chart.scales.x, area = chart.chartArea, ctx = chart.ctx;
      ctx.save();
      for (var s = 0; s < sets.length; s++) {
        var set = sets[s];
        if (set.hidden) continue;
        ctx.strokeStyle = set.color;
        ctx.lineWidth = set.width || 1;
        ctx.setLineDash(set.dash || []);
        for (var i = 0; i < set.xs.length; i++) {
          var px = x.getPixelForValue(set.xs[i]);
          if (px < area.left - 0.5 || px > area.right + 0.5) continue;
          var top = set.tick ? area.bottom - set.tick : area.top + (set.inset || 0);
          ctx.beginPath();
          ctx.moveTo(px, top);
          ctx.lineTo(px, area.bottom);
          ctx.stroke();
        }
      }
      ctx.restore();
    }
  };
  // Scheme names next to the scatter points (a reader should not need to hover), laid out so no
  // label covers another label or a point: points at the same spot (same size, same quality) share
  // one label, a line per scheme; each label takes the first free place around its point, nearest
  // first (right, left, above, below, then the diagonals, then the same farther out with a leader
  // line); the most crowded points choose first. A label with no free place within reach is left
  // out (the table and the tooltip still name it). window.qkLabels[canvas id] records the layout.
  window.qkLabels = {};
  var LABEL_LINE = 11, MARKER = 5, RINGS = 8;
  // Labels keep LABEL_GAP px from anything, so two side by side never read as one.
  var LABEL_GAP = 3;
  function overlaps(a, b) { return a.x - LABEL_GAP < b.x + b.w && b.x < a.x + a.w + LABEL_GAP && a.y - 1 < b.y + b.h && b.y < a.y + a.h + 1; }
  var pointLabels = {
    id: 'qkPointLabels',
    afterDatasetsDraw: function (chart) {
      var meta = chart.getDatasetMeta(0), ds = chart.data.datasets[0], ctx = chart.ctx, area = chart.chartArea;
      if (!ds || !ds.qkLabels) return;
      ctx.save();
      ctx.font = '10px sans-serif';
      var groups = [], taken = [];
      // The Pareto front's rings (dataset 1) are obstacles too.
      (chart.data.datasets.length > 1 ? chart.getDatasetMeta(1).data : []).forEach(function (p) {
        if (isFinite(p.x) && isFinite(p.y)) taken.push({ x: p.x - MARKER - 3, y: p.y - MARKER - 3, w: 2 * MARKER + 6, h: 2 * MARKER + 6 });
      });
      for (var i = 0; i < meta.data.length; i++) {
        var p = meta.data[i];
        if (!isFinite(p.x) || !isFinite(p.y)) continue;
        taken.push({ x: p.x - MARKER, y: p.y - MARKER, w: 2 * MARKER, h: 2 * MARKER });
        var g = null;
        for (var j = 0; j < groups.length; j++) if (Math.abs(groups[j].x - p.x) < 2 && Math.abs(groups[j].y - p.y) < 2) g = groups[j];
        if (g) g.lines.push(ds.qkLabels[i]);
        else groups.push({ x: p.x, y: p.y, lines: [ds.qkLabels[i]] });
      }
      groups.forEach(function (g) {
        g.w = Math.max.apply(null, g.lines.map(function (t) { return ctx.measureText(t).width; }));
        g.h = g.lines.length * LABEL_LINE;
        g.crowd = groups.filter(function (o) { return Math.abs(o.x - g.x) < 60 && Math.abs(o.y - g.y) < 30; }).length;
      });
      var order = groups.slice().sort(function (a, b) { return b.crowd - a.crowd || a.x - b.x; });
      var placed = [], hidden = [], markers = taken.slice();
      // Ring by ring over all labels, so every label gets its nearest free place before any takes a far one.
      for (var ring = 0; ring < RINGS; ring++) {
        var d = 6 + ring * 12;
        order.forEach(function (g) {
          if (g.box) return;
          var cands = [[g.x + d, g.y - g.h / 2], [g.x - d - g.w, g.y - g.h / 2], [g.x - g.w / 2, g.y - d - g.h], [g.x - g.w / 2, g.y + d],
            [g.x + d, g.y - d - g.h], [g.x + d, g.y + d], [g.x - d - g.w, g.y - d - g.h], [g.x - d - g.w, g.y + d]];
          for (var c = 0; c < cands.length && !g.box; c++) {
            var b = { x: cands[c][0], y: cands[c][1], w: g.w, h: g.h };
            if (b.x < area.left + 2 || b.x + b.w > chart.width - 2 || b.y < area.top || b.y + b.h > area.bottom) continue;
            if (!taken.some(function (t) { return overlaps(b, t); })) { g.box = b; g.ring = ring; taken.push(b); }
          }
        });
      }
      order.forEach(function (g) {
        var box = g.box;
        if (!box) { hidden.push(g.lines.join(', ')); return; }
        placed.push({ x: box.x, y: box.y, w: box.w, h: box.h, lines: g.lines, px: g.x, py: g.y });
        if (g.ring > 0) {
          // Not right next to the point: a leader line from the point to the label's nearest edge.
          var lx = Math.max(box.x, Math.min(g.x, box.x + box.w)), ly = Math.max(box.y, Math.min(g.y, box.y + box.h));
          ctx.strokeStyle = '#999';
          ctx.lineWidth = 1;
          ctx.beginPath();
          ctx.moveTo(g.x, g.y);
          ctx.lineTo(lx, ly);
          ctx.stroke();
        }
        ctx.fillStyle = '#333';
        ctx.textBaseline = 'top';
        for (var k = 0; k < g.lines.length; k++) ctx.fillText(g.lines[k], box.x, box.y + k * LABEL_LINE);
      });
      window.qkLabels[chart.canvas.id] = { placed: placed, hidden: hidden, markers: markers };
      ctx.restore();
    }
  };

  data.models.forEach(function (model, m) {
    var quantRows = model.rows.slice(1);

    // Size vs quality with the Pareto front.
    var pts = model.rows.map(function (r) { return { x: r.bytes / 1024, y: model.quality.percent ? r.quality * 100 : r.quality }; });
    var front = model.pareto.map(function (i) { return pts[i]; });
    make('scatter-' + m, {
      type: 'scatter',
      data: { datasets: [
        { label: 'schemes', data: pts, qkLabels: model.rows.map(function (r) { return r.scheme; }), backgroundColor: '#1f77b4', pointRadius: 4 },
        { label: 'Pareto front', data: front, showLine: true, borderColor: '#d62728', backgroundColor: 'rgba(0,0,0,0)', pointRadius: 7, pointBorderWidth: 1.5, borderWidth: 1.5 }
      ] },
      options: {
        layout: { padding: { right: 40 } },
        plugins: { title: { display: true, text: model.name + ': size vs ' + model.quality.name + (model.quality.higherIsBetter ? ' (higher is better)' : ' (lower is better)') },
          tooltip: { callbacks: { label: function (c) { return (c.datasetIndex === 0 ? model.rows[c.dataIndex].scheme + ': ' : '') + c.parsed.x.toFixed(1) + ' KiB, ' + c.parsed.y.toFixed(3); } } } },
        scales: { x: { type: 'logarithmic', title: { display: true, text: 'file size (KiB, log scale)' } },
          // Room above and below the extreme points for their labels.
          y: { grace: '8%', title: { display: true, text: model.quality.name + (model.quality.percent ? ' (%)' : '') } } }
      },
      plugins: [pointLabels]
    });

    // Per-layer weight SQNR: one panel per group of stored bits (render.ts / sqnr-chart.ts chose
    // the panels and each series' colour, point and dash), layers named by the nodes that read them.
    // Activation schemes have no per-layer numbers (their weights are the int8 row's).
    var rowByScheme = {};
    quantRows.forEach(function (r) { rowByScheme[r.scheme] = r; });
    model.sqnrPanels.forEach(function (panel, p) {
      var sets = panel.series.map(function (s) {
        var r = rowByScheme[s.scheme];
        return { label: s.scheme, borderColor: s.style.color, backgroundColor: s.style.color, borderDash: s.style.dash,
          pointStyle: s.style.pointStyle, pointRadius: 4.5, pointHoverRadius: 6, borderWidth: 1.5, fill: false,
          data: model.layers.map(function (l) { var v = r.layerSqnrDb[l.name]; return v === undefined || v === null ? null : v; }) };
      });
      make('sqnr-' + m + '-' + p, {
        type: 'line',
        data: { labels: model.layerLabels.map(shortName), datasets: sets },
        options: {
          plugins: { title: { display: true, text: model.name + ': weight SQNR per layer, ' + panel.title + ' (dB, higher is better)' },
            legend: { position: 'bottom', labels: { usePointStyle: true, boxWidth: 8, boxHeight: 8 } },
            tooltip: { callbacks: { title: function (items) { var i = items[0].dataIndex; return model.layerLabels[i] + ' (weight ' + model.layers[i].name + ')'; } } } },
          scales: { y: { title: { display: true, text: 'SQNR (dB)' } }, x: { ticks: { autoSkip: false, maxRotation: 60, minRotation: 30 } } }
        }
      });
    });

    // Weight histogram of the selected layer with the selected grids over it.
    var hist = null;
    var select = el('layer-' + m);
    function gridSets(layer) {
      return layer.grids.map(function (g, i) {
        var box = el('grid-' + m + '-' + i);
        // Dense grids (int8's 255 levels) as short ticks along the axis, so sparse ones stay readable.
        return { xs: g.levels, color: GRID_COLORS[i % GRID_COLORS.length], hidden: box ? !box.checked : false,
          width: g.levels.length > 64 ? 0.75 : 1.25, tick: g.levels.length > 64 ? 40 : 0, inset: i * 10 };
      });
    }
    function drawLayer() {
      if (!model.layers.length) return;
      var layer = model.layers[select ? Number(select.value) : 0];
      var cfg = {
        type: 'line',
        data: { datasets: [{ label: layer.name + ' [' + layer.dims.join('×') + ']', data: binCenters(layer.histogram),
          stepped: 'middle', fill: true, pointRadius: 0, borderWidth: 1, borderColor: '#555', backgroundColor: 'rgba(120,120,120,0.35)' }] },
        options: {
          plugins: { title: { display: true, text: model.name + ': weights of ' + model.layerLabels[select ? Number(select.value) : 0] + ' (' + layer.name + ') with quantization levels' }, qkLines: gridSets(layer) },
          scales: { x: { type: 'linear', min: layer.histogram.min, max: layer.histogram.max, title: { display: true, text: 'weight value' } },
            y: { title: { display: true, text: 'count' }, beginAtZero: true } }
        },
        plugins: [linesPlugin]
      };
      if (hist) { hist.data = cfg.data; hist.options = cfg.options; hist.update(); }
      else hist = make('weights-' + m, cfg);
    }
    if (select) select.addEventListener('change', drawLayer);
    (model.layers[0] ? model.layers[0].grids : []).forEach(function (_, i) {
      var box = el('grid-' + m + '-' + i);
      if (box) box.addEventListener('change', drawLayer);
    });
    drawLayer();

    // Calibration: activation histogram with each method's clipping range.
    model.calibration.forEach(function (c, k) {
      var sets = c.thresholds.map(function (t, i) {
        return { xs: [t.lo, t.hi], color: PALETTE[(i + 1) % PALETTE.length], width: 2, dash: i === 0 ? [] : [6, 3] };
      });
      make('calib-' + m + '-' + k, {
        type: 'line',
        data: { datasets: [{ label: c.tensor, data: binCenters(c.histogram, true), stepped: 'middle', fill: true, pointRadius: 0,
          borderWidth: 1, borderColor: '#555', backgroundColor: 'rgba(120,120,120,0.35)' }].concat(c.thresholds.map(function (t, i) {
          // Empty datasets only to put each method's colour in the legend.
          return { label: t.method + ' [' + t.lo.toPrecision(3) + ', ' + t.hi.toPrecision(3) + ']', data: [], borderColor: PALETTE[(i + 1) % PALETTE.length], backgroundColor: PALETTE[(i + 1) % PALETTE.length] };
        })) },
        options: {
          plugins: { title: { display: true, text: model.name + ': activations at ' + c.tensor + ' with calibration ranges' }, qkLines: sets },
          scales: { x: { type: 'linear', title: { display: true, text: 'activation value' },
              min: Math.min.apply(null, [c.histogram.min].concat(c.thresholds.map(function (t) { return t.lo; }))),
              max: Math.max.apply(null, [c.histogram.max].concat(c.thresholds.map(function (t) { return t.hi; }))) },
            y: { type: 'logarithmic', title: { display: true, text: 'count (log)' } } }
        },
        plugins: [linesPlugin]
      });
    });
  });
  document.body.setAttribute('data-qk-ready', String(window.qkCharts.length));
})();
`;
