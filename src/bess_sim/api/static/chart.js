// Minimal time-series line chart on <canvas> (no libraries: the dashboard runs air-gapped).
// series: [{label, color, points: [[t_ms, y], ...], step: bool, dash: [..]}]
// opts:   {yMin, yMax, zero: bool, minSpan, floor, ceil}

const PAD = { left: 48, right: 10, top: 10, bottom: 22 };

function niceStep(range, target) {
  const raw = range / Math.max(target, 1);
  const mag = Math.pow(10, Math.floor(Math.log10(raw)));
  const norm = raw / mag;
  const nice = norm <= 1 ? 1 : norm <= 2 ? 2 : norm <= 2.5 ? 2.5 : norm <= 5 ? 5 : 10;
  return nice * mag;
}

function fmtTime(ms, spanMs) {
  const d = new Date(ms);
  const hh = String(d.getUTCHours()).padStart(2, "0");
  const mm = String(d.getUTCMinutes()).padStart(2, "0");
  const ss = String(d.getUTCSeconds()).padStart(2, "0");
  if (spanMs > 2 * 86400e3) return `${d.getUTCMonth() + 1}/${d.getUTCDate()} ${hh}:${mm}`;
  return spanMs > 3600e3 ? `${hh}:${mm}` : `${hh}:${mm}:${ss}`;
}

function fmtNum(v, step) {
  const decimals = step >= 1 ? 0 : Math.min(4, Math.ceil(-Math.log10(step)));
  return v.toFixed(decimals);
}

export function drawChart(canvas, series, opts = {}) {
  const dpr = window.devicePixelRatio || 1;
  const cssW = canvas.clientWidth || 300;
  const cssH = canvas.clientHeight || 150;
  if (canvas.width !== Math.round(cssW * dpr) || canvas.height !== Math.round(cssH * dpr)) {
    canvas.width = Math.round(cssW * dpr);
    canvas.height = Math.round(cssH * dpr);
  }
  const ctx = canvas.getContext("2d");
  ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
  ctx.clearRect(0, 0, cssW, cssH);
  ctx.font = "11px system-ui, sans-serif";

  const all = series.flatMap((s) => s.points);
  if (all.length === 0) {
    ctx.fillStyle = "#6a7683";
    ctx.textAlign = "center";
    ctx.fillText("no data yet", cssW / 2, cssH / 2);
    canvas.dataset.points = "0";
    return;
  }
  let t0 = Infinity, t1 = -Infinity, y0 = Infinity, y1 = -Infinity;
  for (const [t, y] of all) {
    if (t < t0) t0 = t;
    if (t > t1) t1 = t;
    if (y < y0) y0 = y;
    if (y > y1) y1 = y;
  }
  if (opts.yMin !== undefined) y0 = Math.min(y0, opts.yMin);
  if (opts.yMax !== undefined) y1 = Math.max(y1, opts.yMax);
  if (opts.zero) { y0 = Math.min(y0, 0); y1 = Math.max(y1, 0); }
  const minSpan = opts.minSpan || 1e-6;
  if (y1 - y0 < minSpan) {
    const mid = (y0 + y1) / 2;
    y0 = mid - minSpan / 2;
    y1 = mid + minSpan / 2;
  }
  if (opts.floor !== undefined && y0 < opts.floor) { y1 += opts.floor - y0; y0 = opts.floor; }
  if (opts.ceil !== undefined && y1 > opts.ceil) { y0 -= y1 - opts.ceil; y1 = opts.ceil; }
  if (t1 - t0 < 1) t1 = t0 + 1000;

  const w = cssW - PAD.left - PAD.right;
  const h = cssH - PAD.top - PAD.bottom;
  const ystep = niceStep(y1 - y0, Math.max(2, Math.floor(h / 28)));
  y0 = Math.floor(y0 / ystep + 1e-9) * ystep;
  y1 = Math.ceil(y1 / ystep - 1e-9) * ystep;
  const X = (t) => PAD.left + ((t - t0) / (t1 - t0)) * w;
  const Y = (y) => PAD.top + (1 - (y - y0) / (y1 - y0)) * h;

  // grid + y labels
  ctx.strokeStyle = "#eef1f4";
  ctx.fillStyle = "#6a7683";
  ctx.lineWidth = 1;
  ctx.textAlign = "right";
  ctx.textBaseline = "middle";
  for (let v = y0; v <= y1 + ystep / 2; v += ystep) {
    const y = Math.round(Y(v)) + 0.5;
    ctx.beginPath();
    ctx.moveTo(PAD.left, y);
    ctx.lineTo(PAD.left + w, y);
    ctx.stroke();
    ctx.fillText(fmtNum(v, ystep), PAD.left - 5, y);
  }
  if (y0 < 0 && y1 > 0) {
    ctx.strokeStyle = "#b7c0c9";
    const y = Math.round(Y(0)) + 0.5;
    ctx.beginPath();
    ctx.moveTo(PAD.left, y);
    ctx.lineTo(PAD.left + w, y);
    ctx.stroke();
  }
  // x labels
  ctx.textAlign = "center";
  ctx.textBaseline = "top";
  const nx = Math.max(2, Math.floor(w / 90));
  for (let i = 0; i <= nx; i++) {
    const t = t0 + ((t1 - t0) * i) / nx;
    ctx.fillText(fmtTime(t, t1 - t0), Math.min(Math.max(X(t), PAD.left + 20), PAD.left + w - 20), PAD.top + h + 5);
  }
  ctx.strokeStyle = "#c9d1d9";
  ctx.strokeRect(PAD.left + 0.5, PAD.top + 0.5, w, h);

  // lines
  let drawn = 0;
  for (const s of series) {
    if (s.points.length === 0) continue;
    ctx.save();
    ctx.beginPath();
    ctx.rect(PAD.left, PAD.top, w + 1, h + 1);
    ctx.clip();
    ctx.strokeStyle = s.color;
    ctx.lineWidth = s.width || 1.6;
    ctx.setLineDash(s.dash || []);
    ctx.beginPath();
    let prevY = null;
    s.points.forEach(([t, y], i) => {
      const px = X(t), py = Y(y);
      if (i === 0) ctx.moveTo(px, py);
      else {
        if (s.step && prevY !== null) ctx.lineTo(px, prevY);
        ctx.lineTo(px, py);
      }
      prevY = py;
    });
    if (s.points.length === 1) {
      const [t, y] = s.points[0];
      ctx.arc(X(t), Y(y), 2, 0, 2 * Math.PI);
    }
    ctx.stroke();
    ctx.restore();
    drawn += s.points.length;
  }
  canvas.dataset.points = String(drawn);
}
