// bess-sim dashboard: the fault panel (DESIGN §11). For the selected asset it lists the faults
// acting on it (port-wide ones included), newest first, with an "End" button for the open ones,
// and injects a new fault through POST /faults. A 422 is shown with the field it names. The
// list refreshes every 2 s and after each action. Data is only ever set as textContent.
const TOKEN_KEY = "bess-sim-token";
const REFRESH_MS = 2000;
const $ = (id) => document.getElementById(id);

// Example params per kind, prefilled when the kind changes (docs/faults.md).
const EXAMPLES = {
  trip: {},
  derate: { discharge_pct: 50, charge_pct: 50 },
  stuck: {},
  soc_bias: { offset_pct: 5, drift_pct_per_h: 0 },
  modbus_latency: { delay_ms: 500, jitter_ms: 100 },
  modbus_drop: { probability: 0.5 },
  modbus_exception: { code: 4, probability: 1 },
  modbus_offline: {},
  modbus_disconnect: {},
  frozen_telemetry: { surfaces: ["modbus"] },
  value_override: { field: "soc_pct", value: "NaN", surfaces: ["modbus", "rest"] },
};
const PORT_KINDS = new Set(["modbus_latency", "modbus_drop", "modbus_exception", "modbus_offline", "modbus_disconnect"]);

let assets = [];

async function call(path, method = "GET", body) {
  const headers = { Accept: "application/json" };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const token = sessionStorage.getItem(TOKEN_KEY);
  if (method !== "GET" && token) headers.Authorization = `Bearer ${token}`;
  try {
    const res = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
    let data = null;
    try { data = await res.json(); } catch { data = null; }
    return { status: res.status, data };
  } catch (err) {
    return { status: 0, data: { detail: `network error: ${err.message}` } };
  }
}

function showError(text) {
  const p = $("fault-error");
  p.textContent = text || "";
  p.hidden = !text;
}

function errorText(res) {
  const d = res.data && res.data.detail;
  if (res.status === 401) return "an API token is required (enter it at the top right)";
  if (Array.isArray(d)) {
    return d.map((e) => `${(e.loc || []).slice(1).join(".") || "request"}: ${e.msg}`).join("; ");
  }
  return typeof d === "string" ? d : `request failed (${res.status})`;
}

function when(ts) {
  return ts ? ts.replace("T", " ").replace("Z", "") : "—";
}

function cell(tr, text, cls) {
  const td = document.createElement("td");
  td.textContent = text;
  if (cls) td.className = cls;
  tr.append(td);
  return td;
}

function assetName(id) {
  const a = assets.find((x) => x.id === id);
  return a ? a.name : id;
}

async function refresh() {
  const assetId = $("fault-asset").value;
  if (!assetId) return;
  const res = await call(`/faults?asset_id=${encodeURIComponent(assetId)}&limit=50`);
  if (res.status !== 200) return;
  $("fault-title").textContent = `· ${assetName(assetId)}`;
  const body = $("fault-body");
  const rows = [];
  for (const f of res.data) {
    const tr = document.createElement("tr");
    tr.dataset.faultId = f.id;
    tr.dataset.state = f.state;
    cell(tr, f.kind, "c-kind");
    cell(tr, f.port !== null ? `port ${f.port}` : assetName(f.asset_id));
    cell(tr, JSON.stringify(f.params), "c-params");
    cell(tr, f.end_reason ? `${f.state} (${f.end_reason})` : f.state, `c-state state-${f.state}`);
    cell(tr, when(f.started_at || f.starts_at));
    cell(tr, when(f.ended_at || f.ends_at));
    const td = cell(tr, "");
    if (f.state !== "ended") {
      const b = document.createElement("button");
      b.type = "button";
      b.textContent = "End";
      b.className = "fault-end";
      b.addEventListener("click", async () => {
        const r = await call(`/faults/${f.id}`, "DELETE");
        if (r.status !== 200) showError(errorText(r));
        refresh();
      });
      td.append(b);
    }
    rows.push(tr);
  }
  body.replaceChildren(...rows);
}

function prefill() {
  const kind = $("fault-kind").value;
  $("fault-params").value = JSON.stringify(EXAMPLES[kind] || {});
  const pw = $("fault-port-wide");
  pw.disabled = !PORT_KINDS.has(kind);
  if (pw.disabled) pw.checked = false;
}

async function submit(ev) {
  ev.preventDefault();
  showError("");
  const form = ev.target;
  const kind = $("fault-kind").value;
  let params = {};
  const raw = $("fault-params").value.trim();
  if (raw) {
    try { params = JSON.parse(raw); } catch (err) { return showError(`params: not JSON (${err.message})`); }
  }
  const body = { kind, params };
  const assetId = $("fault-asset").value;
  if ($("fault-port-wide").checked) {
    const a = assets.find((x) => x.id === assetId);
    body.port = a ? a.modbus.port : undefined;
  } else {
    body.asset_id = assetId;
  }
  for (const name of ["start_in_s", "duration_s"]) {
    const v = form.elements.namedItem(name).value.trim();
    if (v !== "") body[name] = Number(v);
  }
  const res = await call("/faults", "POST", body);
  if (res.status !== 201) {
    showError(errorText(res));
    $("fault-status").textContent = "";
    return;
  }
  $("fault-status").textContent = `${res.data.kind} ${res.data.state}`;
  refresh();
}

async function init() {
  const res = await call("/assets");
  if (res.status !== 200) return;
  assets = res.data;
  const select = $("fault-asset");
  select.replaceChildren(...assets.map((a) => {
    const o = document.createElement("option");
    o.value = a.id;
    o.textContent = a.name;
    return o;
  }));
  select.addEventListener("change", refresh);
  $("fault-kind").addEventListener("change", prefill);
  $("fault-form").addEventListener("submit", submit);
  prefill();
  await refresh();
  setInterval(refresh, REFRESH_MS);
  document.body.dataset.faultsReady = "1";
}

init();
