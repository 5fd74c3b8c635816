// bess-sim dashboard: fleet table live over the WebSocket, dispatch forms, history charts and
// table, dispatch log. Plain ES module, no dependencies, every URL relative to the page (works
// behind a reverse-proxy prefix). Data from the API is only ever set as textContent.
import { drawChart } from "./chart.js";

const TOKEN_KEY = "bess-sim-token";
const HISTORY_TABLE_MAX = 500;

const $ = (id) => document.getElementById(id);
const state = {
  assets: [],
  assetById: new Map(),
  siteById: new Map(),
  rows: new Map(), // asset id -> {tr, cells..., msgTr, msgTd}
  latest: new Map(), // asset id -> telemetry
  historyAsset: null,
  history: [], // telemetry rows of historyAsset, oldest first
  sort: { key: "timestamp", dir: -1 },
  clockMode: null,
  logTimer: null,
  lastLogLoad: 0,
  drawPending: false,
  lastDraw: 0,
  lastTick: null,
  reloadTimer: null,
};

// ------------------------------------------------------------------ helpers
function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(props)) {
    if (k === "class") node.className = v;
    else if (k === "text") node.textContent = v;
    else if (k.includes("-")) node.setAttribute(k, v);
    else node[k] = v;
  }
  for (const c of children) node.append(c);
  return node;
}
const fmt = (v, d = 2) => (v === null || v === undefined ? "—" : Number(v).toFixed(d));
const fmtTs = (iso) => (iso ? iso.replace("T", " ").replace("Z", "") : "—");

function token() {
  return sessionStorage.getItem(TOKEN_KEY) || "";
}

async function api(path, { method = "GET", body } = {}) {
  const headers = { Accept: "application/json" };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (method !== "GET" && token()) headers.Authorization = `Bearer ${token()}`;
  let res;
  try {
    res = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  } catch (err) {
    return { status: 0, data: { detail: `network error: ${err.message}` } };
  }
  let data = null;
  try {
    data = await res.json();
  } catch {
    data = null;
  }
  if (res.status === 401) showTokenForm(true);
  return { status: res.status, data };
}

function errorText(data) {
  if (!data) return "request failed";
  const d = data.detail;
  if (typeof d === "string") return d;
  if (Array.isArray(d)) return d.map((e) => `${(e.loc || []).slice(1).join(".") || "request"}: ${e.msg}`).join("; ");
  return "request failed";
}

function showGlobalError(text) {
  const p = $("global-error");
  p.textContent = text || "";
  p.hidden = !text;
}

function showTokenForm(required) {
  const form = $("token-form");
  form.hidden = false;
  if (required) {
    $("token-input").placeholder = "token required";
    $("token-input").focus();
  }
}

// ------------------------------------------------------------------ fleet table
function buildFleet() {
  const body = $("fleet-body");
  body.replaceChildren();
  for (const a of state.assets) {
    const site = state.siteById.get(a.site_id);
    const socBar = el("i");
    const socText = el("span", { class: "c-soc", text: "—" });
    const cells = {
      soc: socText,
      socBar,
      mw: el("td", { class: "num c-mw", text: "—", "data-label": "MW" }),
      sp: el("td", { class: "num c-setpoint", text: "—", "data-label": "Setpoint" }),
      mvar: el("td", { class: "num c-mvar", text: "—", "data-label": "MVAr" }),
      avail: el("td", { class: "num c-avail", text: "—", "data-label": "Available MW" }),
      temp: el("td", { class: "num c-temp", text: "—", "data-label": "Temp °C" }),
      status: el("span", { class: "badge c-status", text: "—" }),
      alarms: el("td", { class: "c-alarms", "data-label": "Alarms" }),
    };
    const mwIn = el("input", {
      type: "number", step: "any", name: "mw", placeholder: "MW", required: true,
      title: `MW in [${a.min_mw}, ${a.max_mw}]`, "aria-label": `MW for ${a.name}`,
    });
    const durIn = el("input", {
      type: "number", step: "any", min: "0", name: "duration_s", placeholder: "hold", class: "dur",
      title: "duration in seconds (empty = hold until superseded)",
    });
    const send = el("button", { type: "submit", class: "primary", text: "Send" });
    const form = el("form", { class: "dispatch-form" }, mwIn, durIn, send);
    form.addEventListener("submit", (ev) => {
      ev.preventDefault();
      submitDispatch(a, mwIn, durIn);
    });
    const histBtn = el("button", { type: "button", class: "c-history", text: "History" });
    histBtn.addEventListener("click", () => selectHistory(a.id, true));

    const tr = el(
      "tr",
      { "data-asset-id": a.id },
      el("td", { class: "name" }, a.name, el("span", { class: "sub", text: `${a.capacity_mwhr} MWh · ${a.min_mw}…${a.max_mw} MW` })),
      el("td", { class: "col-site", text: site ? site.name : a.site_id }),
      el("td", { class: "num", "data-label": "SOC" }, el("div", { class: "soc" }, el("span", { class: "bar" }, socBar), socText)),
      cells.mw,
      cells.sp,
      cells.mvar,
      cells.avail,
      cells.temp,
      el("td", { "data-label": "Status" }, cells.status),
      cells.alarms,
      el("td", { class: "col-dispatch" }, form),
      el("td", {}, histBtn),
    );
    const msgTd = el("td", { colSpan: 12, class: "c-msg" });
    const msgTr = el("tr", { class: "msg", hidden: true, "data-msg-for": a.id }, msgTd);
    body.append(tr, msgTr);
    state.rows.set(a.id, { tr, ...cells, msgTr, msgTd });
  }
}

function updateRow(t) {
  state.latest.set(t.asset_id, t);
  const r = state.rows.get(t.asset_id);
  if (!r) return;
  r.soc.textContent = `${fmt(t.soc_pct, 1)} %`;
  r.socBar.style.width = `${Math.max(0, Math.min(100, t.soc_pct))}%`;
  r.mw.textContent = fmt(t.current_mw);
  r.sp.textContent = fmt(t.setpoint_mw);
  // DESIGN §10: reactive power, available limits, temperature (— without a thermal model)
  r.mvar.textContent = fmt(t.current_mvar);
  r.avail.textContent = `${fmt(t.available_charge_mw, 1)} … ${fmt(t.available_discharge_mw, 1)}`;
  r.temp.textContent = fmt(t.temperature_c, 1);
  r.status.textContent = t.status;
  r.status.className = `badge c-status ${t.status}`;
  const names = t.alarms.join(",");
  if (r.alarms.dataset.names !== names) {
    r.alarms.dataset.names = names;
    r.alarms.replaceChildren(...t.alarms.map((n) => el("span", { class: `alarm ${n}`, text: n })));
  }
}

function showRowMessage(assetId, text, kind) {
  const r = state.rows.get(assetId);
  if (!r) return;
  r.msgTd.textContent = text;
  r.msgTd.className = `c-msg ${kind}`;
  r.msgTr.hidden = false;
}

async function submitDispatch(asset, mwIn, durIn) {
  const mw = Number(mwIn.value);
  const body = { asset_id: asset.id, mw };
  if (durIn.value.trim() !== "") body.duration_s = Number(durIn.value);
  const { status, data } = await api("dispatch", { method: "POST", body });
  if (status === 201) {
    const dur = data.duration_s ? ` for ${data.duration_s} s` : " (holds until superseded)";
    showRowMessage(asset.id, `accepted: ${data.mw} MW${dur}`, "accepted");
  } else if (status === 401) {
    showRowMessage(asset.id, "rejected: an API token is required (enter it at the top right)", "rejected");
  } else {
    showRowMessage(asset.id, `rejected: ${errorText(data)}`, "rejected");
  }
  loadLog();
}

// ------------------------------------------------------------------ WebSocket
function connectWs(attempt = 0) {
  const url = new URL("ws/telemetry", document.baseURI);
  url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
  const conn = $("conn");
  const ws = new WebSocket(url);
  ws.onopen = () => {
    attempt = 0;
    conn.dataset.state = "live";
    conn.textContent = "live";
  };
  ws.onmessage = (ev) => {
    let msg;
    try { msg = JSON.parse(ev.data); } catch { return; }
    if (msg.type === "error") { showGlobalError(msg.detail); return; }
    if (msg.type !== "telemetry") return;
    onTick(msg);
  };
  ws.onclose = () => {
    conn.dataset.state = "down";
    conn.textContent = "reconnecting…";
    const delay = Math.min(10000, 500 * 2 ** attempt);
    setTimeout(() => connectWs(attempt + 1), delay);
  };
}

function onTick(msg) {
  let setpointChanged = false;
  for (const t of msg.snapshots) {
    const prev = state.latest.get(t.asset_id);
    if (prev && (prev.setpoint_mw !== t.setpoint_mw || prev.status !== t.status)) setpointChanged = true;
    updateRow(t);
    if (t.asset_id === state.historyAsset) appendHistory(t);
  }
  // The server drops ticks for a client that falls behind (latest-only): when ticks were
  // skipped, refetch the history so the charts have no holes (at most every 1.5 s).
  if (state.lastTick !== null && msg.tick > state.lastTick + 1 && !state.reloadTimer) {
    state.reloadTimer = setTimeout(() => { state.reloadTimer = null; loadHistory(); }, 1500);
  }
  state.lastTick = msg.tick;
  $("clock-now").textContent = fmtTs(msg.timestamp);
  $("clock-tick").textContent = String(msg.tick);
  // Dispatch statuses change with time (completed, reverted): refresh the log when a setpoint
  // moved, and at most every 3 s otherwise.
  if (setpointChanged || Date.now() - state.lastLogLoad > 3000) loadLog();
}

// ------------------------------------------------------------------ history
function selectHistory(assetId, scroll) {
  state.historyAsset = assetId;
  $("history-asset").value = assetId;
  for (const [id, r] of state.rows) r.tr.classList.toggle("selected", id === assetId);
  const a = state.assetById.get(assetId);
  $("history-title").textContent = a ? `· ${a.name}` : "";
  loadHistory();
  if (scroll) $("history-card").scrollIntoView({ behavior: "smooth", block: "nearest" });
}

async function loadHistory() {
  const id = state.historyAsset;
  if (!id) return;
  const limit = $("history-limit").value;
  const { status, data } = await api(`telemetry/${id}/history?limit=${limit}`);
  if (id !== state.historyAsset) return;
  if (status !== 200) { showGlobalError(errorText(data)); return; }
  state.history = data.slice().reverse();
  scheduleDraw(true);
}

function appendHistory(t) {
  const last = state.history[state.history.length - 1];
  if (last && last.timestamp >= t.timestamp) return;
  state.history.push(t);
  const limit = Number($("history-limit").value);
  if (state.history.length > limit) state.history.splice(0, state.history.length - limit);
  scheduleDraw(false);
}

function scheduleDraw(now) {
  if (state.drawPending) return;
  state.drawPending = true;
  // At most ~2 redraws a second: a fast real-time clock must not keep the page busy.
  const wait = now ? 0 : Math.max(0, 500 - (Date.now() - state.lastDraw));
  setTimeout(() => requestAnimationFrame(() => {
    state.drawPending = false;
    state.lastDraw = Date.now();
    drawHistory();
  }), wait);
}

function drawHistory() {
  const rows = state.history;
  const pts = (key) => rows.map((r) => [Date.parse(r.timestamp), r[key]]);
  drawChart($("chart-soc"), [{ label: "SOC %", color: "#237a57", points: pts("soc_pct") }],
    // Autoscaled (a short run moves SOC by tenths of a percent) but never beyond 0..100.
    { minSpan: 2, floor: 0, ceil: 100 });
  drawChart(
    $("chart-mw"),
    [
      { label: "setpoint", color: "#6a7683", points: pts("setpoint_mw"), step: true, dash: [4, 3], width: 1.2 },
      { label: "MW", color: "#c26a00", points: pts("current_mw") },
    ],
    { zero: true },
  );
  renderHistoryTable();
}

function renderHistoryTable() {
  const { key, dir } = state.sort;
  const val = (r) => (key === "alarms" ? r.alarms.join(",") : r[key]);
  const rows = state.history.slice().sort((a, b) => {
    const x = val(a), y = val(b);
    return (x < y ? -1 : x > y ? 1 : 0) * dir;
  }).slice(0, HISTORY_TABLE_MAX);
  const body = $("history-body");
  body.replaceChildren(...rows.map((r) => el(
    "tr", {},
    el("td", { text: fmtTs(r.timestamp) }),
    el("td", { class: "num", text: fmt(r.soc_pct, 2) }),
    el("td", { class: "num", text: fmt(r.soc_mwhr, 3) }),
    el("td", { class: "num", text: fmt(r.current_mw, 3) }),
    el("td", { class: "num", text: fmt(r.setpoint_mw, 2) }),
    el("td", { text: r.status }),
    el("td", { text: r.alarms.join(", ") }),
  )));
}

function setupSorting() {
  const ths = document.querySelectorAll("#history-table th[data-key]");
  for (const th of ths) {
    th.addEventListener("click", () => {
      const key = th.dataset.key;
      state.sort = { key, dir: state.sort.key === key ? -state.sort.dir : key === "timestamp" ? -1 : 1 };
      for (const other of ths) other.removeAttribute("aria-sort");
      th.setAttribute("aria-sort", state.sort.dir > 0 ? "ascending" : "descending");
      renderHistoryTable();
    });
  }
}

// ------------------------------------------------------------------ dispatch log
async function loadLog() {
  state.lastLogLoad = Date.now();
  const { status, data } = await api("dispatches?limit=50");
  if (status !== 200) return;
  const body = $("log-body");
  const rows = [];
  for (const d of data) {
    const a = state.assetById.get(d.asset_id);
    rows.push(el(
      "tr", { "data-dispatch-id": d.id },
      el("td", { text: fmtTs(d.submitted_at).slice(11), title: fmtTs(d.submitted_at) }),
      el("td", { text: a ? a.name : d.asset_id }),
      el("td", { class: "num", text: d.mw === null ? "NaN" : fmt(d.mw, 2) }),
      el("td", { class: "num", text: d.duration_s === null ? "hold" : String(d.duration_s) }),
      el("td", { class: `status-${d.status}`, text: d.status }),
      el("td", { text: d.source }),
    ));
    if (d.reason) rows.push(el("tr", { class: "reason-row" }, el("td", { class: "reason", colSpan: 6, text: d.reason })));
  }
  body.replaceChildren(...rows);
}

// ------------------------------------------------------------------ clock
async function loadClock() {
  const { status, data } = await api("sim/clock");
  if (status !== 200) return;
  state.clockMode = data.mode;
  $("clock-mode").textContent = data.mode === "manual"
    ? `manual clock (tick ${data.tick_interval_s} s)`
    : `real time ×${data.speed} (tick ${data.tick_interval_s} s)`;
  $("clock-now").textContent = fmtTs(data.now);
  $("clock-tick").textContent = String(data.tick);
  $("step-controls").hidden = data.mode !== "manual";
}

function setupStep() {
  for (const btn of document.querySelectorAll("#step-controls button")) {
    btn.addEventListener("click", async () => {
      btn.disabled = true;
      const { status, data } = await api("sim/step", { method: "POST", body: { seconds: Number(btn.dataset.step) } });
      btn.disabled = false;
      showGlobalError(status === 200 ? "" : `step failed: ${errorText(data)}`);
    });
  }
}

// ------------------------------------------------------------------ grid (DESIGN §10)
async function loadGrid() {
  const { status, data } = await api("grid");
  if (status !== 200) return;
  const hz = $("grid-hz");
  const amb = $("grid-amb");
  if (document.activeElement !== hz) hz.value = data.frequency_hz;
  if (document.activeElement !== amb) amb.value = data.ambient_c === null ? "" : data.ambient_c;
}

function setupGrid() {
  $("grid-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const body = {};
    const hz = $("grid-hz").value.trim();
    const amb = $("grid-amb").value.trim();
    if (hz !== "") body.frequency_hz = Number(hz);
    if (amb !== "") body.ambient_c = Number(amb);
    const { status, data } = await api("grid", { method: "POST", body });
    showGlobalError(status === 200 ? "" : `grid: ${errorText(data)}`);
    if (status === 200) loadGrid();
  });
}

function setupToken() {
  const form = $("token-form");
  if (token()) form.hidden = false;
  $("token-input").value = token();
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    const v = $("token-input").value.trim();
    if (v) sessionStorage.setItem(TOKEN_KEY, v);
    else sessionStorage.removeItem(TOKEN_KEY);
    $("token-input").placeholder = "BESS_API_TOKEN";
  });
}

// ------------------------------------------------------------------ start
async function main() {
  setupSorting();
  setupStep();
  setupToken();
  setupGrid();
  const [sites, assets] = await Promise.all([api("sites"), api("assets")]);
  if (sites.status !== 200 || assets.status !== 200) {
    showGlobalError("cannot load the fleet from the API");
    return;
  }
  for (const s of sites.data) state.siteById.set(s.id, s);
  state.assets = assets.data;
  for (const a of state.assets) state.assetById.set(a.id, a);
  buildFleet();
  const sel = $("history-asset");
  sel.replaceChildren(...state.assets.map((a) => el("option", { value: a.id, text: a.name })));
  sel.addEventListener("change", () => selectHistory(sel.value, false));
  $("history-limit").addEventListener("change", loadHistory);
  $("history-refresh").addEventListener("click", loadHistory);
  $("log-refresh").addEventListener("click", loadLog);
  window.addEventListener("resize", () => scheduleDraw(true));
  connectWs();
  await loadClock();
  setInterval(loadClock, 10000);
  await loadGrid();
  setInterval(loadGrid, 10000);
  loadLog();
  if (state.assets.length) selectHistory(state.assets[0].id, false);
  document.body.dataset.ready = "1";
}

main();
