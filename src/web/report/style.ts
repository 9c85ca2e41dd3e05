/** The report's stylesheet: readable tables, charts in a two-column grid on wide screens. */
export const REPORT_CSS = `
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; color: #222; margin: 0; background: #fff; }
header, main, footer { max-width: 1200px; margin: 0 auto; padding: 0 16px; }
header h1 { margin: 16px 0 4px; font-size: 22px; }
header p, footer { color: #555; }
section { border-top: 1px solid #ddd; margin-top: 16px; }
h2 { font-size: 19px; margin: 14px 0 4px; }
h3 { font-size: 15px; margin: 18px 0 4px; }
table { border-collapse: collapse; margin: 8px 0; font-variant-numeric: tabular-nums; }
th, td { padding: 2px 10px; border-bottom: 1px solid #eee; text-align: left; white-space: nowrap; }
th { border-bottom: 2px solid #ccc; }
td.num { text-align: right; }
tbody tr:first-child { background: #f4f7fb; }
.chart { position: relative; height: 340px; margin: 8px 0; }
.chart.tall { height: 420px; }
/* A scatter of many schemes needs the height to name them all without collisions. */
.chart.taller { height: 600px; }
.controls { display: flex; flex-wrap: wrap; gap: 14px; align-items: center; }
.swatch { display: inline-block; width: 14px; height: 3px; vertical-align: middle; margin-right: 4px; }
.s0 { background: rgba(31,119,180,0.6); } .s1 { background: #d62728; } .s2 { background: #2ca02c; } .s3 { background: #ff7f0e; }
details { margin: 6px 0; }
p.note { color: #555; font-size: 12px; margin: 2px 0 8px; max-width: 900px; }
footer { padding: 16px; font-size: 12px; }
`;
