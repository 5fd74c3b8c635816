// bess-sim dashboard: run-time registration (DESIGN §14). Registers an asset with the fields
// of an assets.yaml entry and deletes one; a 422 is shown next to the field it names, a 409
// (clash, file-managed asset) above the form. After a change the page reloads so every panel
// (fleet table, history selector) shows the new fleet. Data is only ever set as textContent.
const TOKEN_KEY = "bess-sim-token";
const $ = (id) => document.getElementById(id);

async function call(path, method, body) {
  const headers = { Accept: "application/json" };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const token = sessionStorage.getItem(TOKEN_KEY);
  if (method !== "GET" && token) headers.Authorization = `Bearer ${token}`;
  let res;
  try {
    res = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  } catch (err) {
    return { status: 0, data: { detail: `network error: ${err.message}` } };
  }
  let data = null;
  try {
    data = res.status === 204 ? null : await res.json();
  } catch {
    data = null;
  }
  return { status: res.status, data };
}

function clearErrors(form) {
  for (const span of form.querySelectorAll(".field-error")) span.remove();
  for (const input of form.querySelectorAll("[aria-invalid]")) input.removeAttribute("aria-invalid");
  const p = $("register-error");
  p.hidden = true;
  p.textContent = "";
}

function formError(text) {
  const p = $("register-error");
  p.textContent = text;
  p.hidden = false;
}

function fieldError(form, field, msg) {
  const input = form.elements.namedItem(field);
  if (!input || !input.parentElement) return false;
  input.setAttribute("aria-invalid", "true");
  const span = document.createElement("span");
  span.className = "field-error";
  span.dataset.field = field;
  span.textContent = msg;
  input.parentElement.append(span);
  return true;
}

function showErrors(form, res) {
  const d = res.data && res.data.detail;
  if (res.status === 401) return formError("an API token is required (enter it at the top right)");
  if (!Array.isArray(d)) return formError(typeof d === "string" ? d : `request failed (${res.status})`);
  const unplaced = [];
  for (const e of d) {
    const field = (e.loc || []).slice(1).join(".");
    if (!fieldError(form, field, e.msg)) unplaced.push(`${field || "request"}: ${e.msg}`);
  }
  if (unplaced.length) formError(unplaced.join("; "));
}

function body(form) {
  const out = {};
  for (const input of form.querySelectorAll("input, select")) {
    const value = input.value.trim();
    if (value === "") continue;
    const v = input.type === "number" && Number.isFinite(Number(value)) ? Number(value) : value;
    const [head, sub] = input.name.split(".");
    if (sub) (out[head] ??= {})[sub] = v;
    else out[head] = v;
  }
  return out;
}

async function fillSelects() {
  const [sites, assets] = await Promise.all([call("sites", "GET"), call("assets", "GET")]);
  const siteSel = $("register-form").elements.namedItem("site_id");
  siteSel.replaceChildren(
    ...(sites.data || []).map((s) => Object.assign(document.createElement("option"), { value: s.id, textContent: s.name })),
  );
  const assetSel = $("remove-form").elements.namedItem("asset_id");
  assetSel.replaceChildren(
    ...(assets.data || []).map((a) => Object.assign(document.createElement("option"), { value: a.id, textContent: a.name })),
  );
}

function done(text) {
  $("register-status").textContent = text;
  document.body.dataset.registered = text;
  setTimeout(() => location.reload(), 600);
}

async function onRegister(ev) {
  ev.preventDefault();
  const form = ev.currentTarget;
  clearErrors(form);
  const res = await call("assets", "POST", body(form));
  if (res.status === 201) done(`registered ${res.data.name} (port ${res.data.modbus.port}, unit ${res.data.modbus.unit_id})`);
  else showErrors(form, res);
}

async function onRemove(ev) {
  ev.preventDefault();
  clearErrors($("register-form"));
  const sel = ev.currentTarget.elements.namedItem("asset_id");
  const name = sel.selectedOptions[0] ? sel.selectedOptions[0].textContent : sel.value;
  const res = await call(`assets/${encodeURIComponent(sel.value)}`, "DELETE");
  if (res.status === 204) done(`deleted ${name}`);
  else showErrors($("register-form"), res);
}

function init() {
  $("register-form").addEventListener("submit", onRegister);
  $("remove-form").addEventListener("submit", onRemove);
  fillSelects().then(() => document.body.setAttribute("data-registration-ready", "1"));
}

if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", init);
else init();
