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
  // Scheme names next to the scatter points (a reader should not need to hover).
  var pointLabels = {
    id: 'qkPointLabels',
    afterDatasetsDraw: function (chart) {
      var meta = chart.getDatasetMeta(0), ds = chart.data.datasets[0], ctx = chart.ctx;
      if (!ds || !ds.qkLabels) return;
      ctx.save();
      ctx.font = '10px sans-serif';
      ctx.fillStyle = '#333';
      // Points often coincide (same size, same accuracy): a label that would overlap one already
      // drawn is moved down a line, then left out (the table and the tooltip still name it).
      var boxes = [];
      for (var i = 0; i < meta.data.length; i++) {
        var p = meta.data[i], text = ds.qkLabels[i], w = ctx.measureText(text).width;
        for (var k = 0; k < 4; k++) {
          var box = { x: p.x + 5, y: p.y - 4 + k * 11, w: w, h: 10 };
          var clash = boxes.some(function (b) { return box.x < b.x + b.w && b.x < box.x + box.w && box.y - box.h < b.y && b.y - b.h < box.y; });
          if (!clash) { boxes.push(box); ctx.fillText(text, box.x, box.y); break; }
        }
      }
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
          y: { title: { display: true, text: model.quality.name + (model.quality.percent ? ' (%)' : '') } } }
      },
      plugins: [pointLabels]
    });

    // Per-layer SQNR bars, one colour per scheme.
    var layerNames = model.layers.map(function (l) { return l.name; });
    // Rows with per-layer numbers only (activation schemes give a combined one: their weights are int8's).
    var sqnrSets = quantRows.filter(function (r) { return Object.keys(r.layerSqnrDb).length > 0; }).map(function (r, i) {
      return { label: r.scheme, backgroundColor: PALETTE[i % PALETTE.length],
        data: layerNames.map(function (n) { var v = r.layerSqnrDb[n]; return v === undefined || v === null ? null : v; }) };
    });
    make('sqnr-' + m, {
      type: 'bar',
      data: { labels: layerNames.map(shortName), datasets: sqnrSets },
      options: {
        plugins: { title: { display: true, text: model.name + ': weight SQNR per layer (dB, higher is better)' }, legend: { position: 'bottom', labels: { boxWidth: 12 } } },
        scales: { y: { title: { display: true, text: 'SQNR (dB)' } }, x: { ticks: { autoSkip: false, maxRotation: 60, minRotation: 30 } } }
      }
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
          plugins: { title: { display: true, text: model.name + ': weights of ' + layer.name + ' with quantization levels' }, qkLines: gridSets(layer) },
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
