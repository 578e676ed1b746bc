/// The live page the admin server serves at `/`: one self-contained document (no CDN, no build step),
/// reading `/api/state` once and then the deltas of `/api/events`. Every value that comes from a charger
/// or a backend is put in the page as text (`textContent`), never as markup.
enum LivePage {
    static let html = #"""
<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>OCPP Witness — live</title>
<style>
:root { --bg: #fbfbfa; --fg: #1d1f21; --muted: #6b6f76; --line: #d9dbde; --panel: #ffffff; --accent: #2060c0;
        --error: #b3261e; --warning: #9a6700; --info: #3b6ea5; --fault: #7b3fb3; --pass: #1a7f37; }
@media (prefers-color-scheme: dark) {
  :root { --bg: #16181b; --fg: #e6e7e9; --muted: #9aa0a8; --line: #30343a; --panel: #1e2125; --accent: #7aa7ff;
          --error: #ff8a80; --warning: #e3b341; --info: #8ab4f8; --fault: #c79bff; --pass: #56d364; }
}
:root[data-theme="light"] { --bg: #fbfbfa; --fg: #1d1f21; --muted: #6b6f76; --line: #d9dbde; --panel: #ffffff; --accent: #2060c0;
        --error: #b3261e; --warning: #9a6700; --info: #3b6ea5; --fault: #7b3fb3; --pass: #1a7f37; }
:root[data-theme="dark"] { --bg: #16181b; --fg: #e6e7e9; --muted: #9aa0a8; --line: #30343a; --panel: #1e2125; --accent: #7aa7ff;
        --error: #ff8a80; --warning: #e3b341; --info: #8ab4f8; --fault: #c79bff; --pass: #56d364; }
* { box-sizing: border-box; }
body { margin: 0; font: 14px/1.4 system-ui, sans-serif; background: var(--bg); color: var(--fg); }
header { display: flex; flex-wrap: wrap; gap: 1.2em; align-items: baseline; padding: .6em 1em; border-bottom: 1px solid var(--line); background: var(--panel); }
header h1 { font-size: 1.1em; margin: 0; }
.figure { color: var(--muted); } .figure b { color: var(--fg); font-variant-numeric: tabular-nums; }
#stream.down { color: var(--error); }
main { display: grid; grid-template-columns: minmax(0, 3fr) minmax(0, 2fr); gap: 1em; padding: 1em; }
@media (max-width: 1100px) { main { grid-template-columns: 1fr; } }
section { background: var(--panel); border: 1px solid var(--line); border-radius: 6px; padding: .6em .8em; min-width: 0; }
section h2 { font-size: 1em; margin: .2em 0 .6em; display: flex; gap: .8em; align-items: baseline; flex-wrap: wrap; }
table { width: 100%; border-collapse: collapse; font-variant-numeric: tabular-nums; }
th, td { text-align: left; padding: .25em .4em; border-bottom: 1px solid var(--line); vertical-align: top; }
th { color: var(--muted); font-weight: 600; }
td.num { text-align: right; }
tr.selected td { background: color-mix(in srgb, var(--accent) 14%, transparent); }
button, input { font: inherit; color: var(--fg); background: var(--bg); border: 1px solid var(--line); border-radius: 4px; padding: .15em .5em; }
button { cursor: pointer; } button:hover { border-color: var(--accent); }
.scroll { max-height: 60vh; overflow: auto; }
.sev-error, .v-fail { color: var(--error); font-weight: 600; } .v-pass { color: var(--pass); font-weight: 600; }
.v-pending, .v-inconclusive { color: var(--warning); } .v-notRun { color: var(--muted); }
#verdicts .pair { margin-bottom: .6em; } #verdicts .area { margin: .2em 0 .2em .8em; } #verdicts .check { margin-left: 1.6em; }
.sev-warning { color: var(--warning); } .sev-info { color: var(--info); }
.muted { color: var(--muted); }
#messages .frame { border-bottom: 1px solid var(--line); padding: .3em 0; }
#messages .meta { color: var(--muted); font-size: .9em; }
#messages .mark { color: var(--fault); font-weight: 600; margin-left: .5em; }
#messages pre { margin: .2em 0 0; white-space: pre-wrap; word-break: break-word; font: 12px/1.35 ui-monospace, monospace; }
#deviations .detail { word-break: break-word; }
#deviations td.when { white-space: nowrap; }
a { color: var(--accent); cursor: pointer; }
</style>
</head>
<body>
<header>
  <h1>OCPP Witness — live</h1>
  <span class="figure">connected <b id="f-active">–</b></span>
  <span class="figure">accepted <b id="f-accepted">–</b></span>
  <span class="figure">refused <b id="f-refused">–</b></span>
  <span class="figure">deviations <b id="f-deviations">–</b></span>
  <span class="figure">messages/s <b id="f-rate">–</b></span>
  <span class="figure" id="recorder">recorder queue <b id="f-queue">–</b>, lost <b id="f-lost">–</b></span>
  <span class="figure" id="stream">connecting…</span>
  <span style="flex:1"></span>
  <label class="figure">admin token <input id="token" type="password" size="18" autocomplete="off"></label>
  <button id="theme" title="light or dark">◐</button>
</header>
<main>
  <div>
    <section>
      <h2>Connections <span class="muted" id="c-range"></span>
        <input id="filter" placeholder="filter by charge point" size="22">
        <button id="prev">‹</button><button id="next">›</button></h2>
      <div class="scroll"><table id="connections">
        <thead><tr><th>charge point</th><th>vendor / model / firmware</th><th>protocol</th><th>since</th><th class="num">→ CSMS</th><th class="num">→ charger</th><th></th></tr></thead>
        <tbody></tbody></table></div>
    </section>
    <section style="margin-top:1em">
      <h2>Messages <span id="m-charger" class="muted">pick a charger</span></h2>
      <div class="scroll" id="messages"></div>
    </section>
  </div>
  <div>
  <section id="checks" hidden style="margin-bottom:1em">
    <h2>Witness checks <span class="muted" id="checks-note">of the policy in force, as they resolve</span></h2>
    <div class="scroll" id="verdicts"></div>
  </section>
  <section>
    <h2>Deviations <span class="muted">newest first</span></h2>
    <div class="scroll"><table id="deviations">
      <thead><tr><th>time</th><th>severity</th><th>rule</th><th>charger</th><th>detail</th></tr></thead>
      <tbody></tbody></table></div>
  </section>
  </div>
</main>
<script>
"use strict";
const PAGE = 200, FEED = 300;
let offset = 0, total = 0, selected = null, deviationsSeen = 0, refreshTimer = null, mode = "live";
const $ = (id) => document.getElementById(id);
function cell(row, text, className) {
  const td = row.insertCell();
  td.textContent = text == null ? "" : String(text);
  if (className) td.className = className;
  return td;
}
function shortTime(ts) { return ts ? String(ts).replace("T", " ").replace(/\.\d+Z$/, "Z") : ""; }
async function getJSON(path) {
  const response = await fetch(path, { cache: "no-store" });
  if (!response.ok) throw new Error(path + ": " + response.status);
  return response.json();
}
function figures(f) {
  if (!f) return;
  $("f-active").textContent = f.active; $("f-accepted").textContent = f.accepted; $("f-refused").textContent = f.refused;
  if (f.recorderQueue !== undefined) { $("f-queue").textContent = f.recorderQueue; $("f-lost").textContent = f.recordsLost; }
  if (f.messagesPerSecond !== undefined) $("f-rate").textContent = f.messagesPerSecond;
}
function connectionRow(c) {
  const row = document.createElement("tr");
  row.dataset.chargePoint = c.chargePoint;
  if (c.chargePoint === selected) row.className = "selected";
  cell(row, c.chargePoint);
  cell(row, [c.vendor, c.model, c.firmware].filter(Boolean).join(" / ") || "—", "who");
  const protocol = cell(row, c.subprotocol || "—");
  if (c.transport) { const t = document.createElement("div"); t.className = "muted"; t.textContent = c.transport; protocol.append(t); }
  cell(row, shortTime(c.opened));
  cell(row, c.toCSMS || 0, "num to-csms");
  cell(row, c.toCharger || 0, "num to-charger");
  const actions = row.insertCell();
  const view = document.createElement("button"); view.textContent = "messages"; view.onclick = () => select(c.chargePoint);
  actions.append(view);
  if (mode === "live") {
    const cut = document.createElement("button"); cut.textContent = "disconnect"; cut.className = "disconnect";
    cut.onclick = () => disconnect(c.chargePoint);
    actions.append(" ", cut);
  } else if (c.connected === false) {
    actions.append(" closed");
  }
  return row;
}
async function loadConnections() {
  const filter = encodeURIComponent($("filter").value.trim());
  const state = await getJSON(`/api/state?offset=${offset}&limit=${PAGE}&filter=${filter}`);
  total = state.connections.total;
  const body = $("connections").tBodies[0];
  body.replaceChildren(...state.connections.rows.map(connectionRow));
  $("c-range").textContent = total === 0 ? "none" : `${offset + 1}–${offset + state.connections.rows.length} of ${total}`;
  figures(state.figures);
  return state;
}
function scheduleRefresh() {
  if (refreshTimer) return;
  refreshTimer = setTimeout(() => { refreshTimer = null; loadConnections().catch(() => {}); }, 500);
}
function deviationRow(d) {
  const row = document.createElement("tr");
  const when = cell(row, d.ts ? String(d.ts).slice(11, 19) : "", "when");
  when.title = shortTime(d.ts);
  cell(row, d.severity, "sev-" + d.severity);
  cell(row, d.rule);
  const who = row.insertCell();
  const link = document.createElement("a"); link.textContent = d.chargePoint || ""; link.onclick = () => d.chargePoint && select(d.chargePoint);
  who.append(link);
  const detail = cell(row, (d.action ? d.action + " " : "") + (d.path ? d.path + ": " : "") + d.detail, "detail");
  if (d.ref) {
    const ref = document.createElement("div"); ref.className = "muted"; ref.title = d.ref;
    ref.textContent = d.ref.split("/").pop();
    detail.append(ref);
  }
  return row;
}
function addDeviation(d) {
  const body = $("deviations").tBodies[0];
  body.prepend(deviationRow(d));
  while (body.rows.length > FEED) body.deleteRow(body.rows.length - 1);
  deviationsSeen += 1; $("f-deviations").textContent = deviationsSeen;
}
async function select(chargePoint) {
  selected = chargePoint;
  for (const row of $("connections").tBodies[0].rows) row.className = row.dataset.chargePoint === chargePoint ? "selected" : "";
  $("m-charger").textContent = chargePoint;
  await loadMessages();
}
async function loadMessages() {
  if (!selected) return;
  const data = await getJSON("/api/chargers/" + encodeURIComponent(selected) + "/frames");
  const box = $("messages");
  // Live: newest first. A recorded capture reads from its beginning, message by message.
  const frames = mode === "live" ? data.frames.slice().reverse() : data.frames;
  box.replaceChildren(...frames.map((f) => {
    const div = document.createElement("div"); div.className = "frame";
    const meta = document.createElement("div"); meta.className = "meta";
    const kind = { 2: "CALL", 3: "CALLRESULT", 4: "CALLERROR", 5: "CALLRESULTERROR", 6: "SEND" }[f.msgType] || f.opcode || "";
    meta.textContent = `${shortTime(f.ts)}  ${f.dir === "toCSMS" ? "charger → CSMS" : "CSMS → charger"}  ${kind} ${f.action || ""}  ${String(f.ref).split("/").pop()}`;
    meta.title = f.ref;
    const marks = [];
    if (f.fault) marks.push("fault: " + (f.fault.rule || f.fault.kind || "applied"));
    if (f.injected) marks.push("injected by OCPP Witness");
    if (f.malformed) marks.push("malformed: " + (f.malformed.reason || ""));
    if (f.redacted) marks.push("redacted");
    if (f.truncated) marks.push("truncated");
    for (const text of marks) { const mark = document.createElement("span"); mark.className = "mark"; mark.textContent = text; meta.append(mark); }
    const pre = document.createElement("pre");
    pre.textContent = typeof f.payload === "string" ? f.payload : JSON.stringify(f.payload ?? null, null, 2);
    div.append(meta, pre);
    return div;
  }));
}
async function disconnect(chargePoint) {
  const token = $("token").value;
  if (!token) { alert("Enter the admin token first: disconnecting changes the proxy."); return; }
  const response = await fetch("/chargers/" + encodeURIComponent(chargePoint) + "/disconnect?reason=" + encodeURIComponent("disconnected from the live page"),
                               { method: "POST", headers: { Authorization: "Bearer " + token } });
  const answer = await response.json().catch(() => ({}));
  if (!response.ok) alert(answer.error || ("disconnect failed: " + response.status));
  scheduleRefresh();
}
function applyTick(tick) {
  figures(tick.figures);
  const rows = $("connections").tBodies[0].rows;
  for (const row of rows) {
    const counts = tick.counts[row.dataset.chargePoint];
    if (!counts) continue;
    row.querySelector(".to-csms").textContent = counts.toCSMS;
    row.querySelector(".to-charger").textContent = counts.toCharger;
    const who = [counts.vendor, counts.model, counts.firmware].filter(Boolean).join(" / ");
    if (who) row.querySelector(".who").textContent = who;
  }
  if (selected && tick.counts[selected]) loadMessages().catch(() => {});
}
async function loadVerdicts() {
  const data = await getJSON("/api/verdicts");
  const pairs = data.pairs || [];
  $("checks").hidden = pairs.length === 0;
  $("verdicts").replaceChildren(...pairs.map((p) => {
    const div = document.createElement("div"); div.className = "pair";
    const title = document.createElement("b");
    title.textContent = `${p.charger.vendor} ${p.charger.model} ${p.charger.firmware} ↔ ${p.backend}`;
    div.append(title);
    for (const area of p.areas) {
      const line = document.createElement("div"); line.className = "area";
      const verdict = document.createElement("span"); verdict.className = "v-" + area.verdict; verdict.textContent = area.verdict;
      line.append(area.area + ": ", verdict);
      div.append(line);
      for (const check of area.checks) {
        const row = document.createElement("div"); row.className = "check";
        const v = document.createElement("span"); v.className = "v-" + check.verdict; v.textContent = check.verdict;
        row.append(check.name + " ", v, " — " + check.detail);
        row.title = (check.refs || []).join("\n");
        div.append(row);
      }
    }
    return div;
  }));
}
function listen() {
  if (mode !== "live") return;
  const events = new EventSource("/api/events");
  events.onopen = () => { $("stream").textContent = "live"; $("stream").className = "figure"; };
  events.onerror = () => { $("stream").textContent = "stream lost, reconnecting…"; $("stream").className = "figure down"; };
  events.addEventListener("deviation", (e) => addDeviation(JSON.parse(e.data)));
  events.addEventListener("open", () => scheduleRefresh());
  events.addEventListener("close", () => scheduleRefresh());
  events.addEventListener("tick", (e) => applyTick(JSON.parse(e.data)));
}
$("filter").oninput = () => { offset = 0; scheduleRefresh(); };
$("prev").onclick = () => { offset = Math.max(0, offset - PAGE); loadConnections(); };
$("next").onclick = () => { if (offset + PAGE < total) { offset += PAGE; loadConnections(); } };
$("theme").onclick = () => {
  const root = document.documentElement;
  const dark = root.dataset.theme ? root.dataset.theme === "dark" : matchMedia("(prefers-color-scheme: dark)").matches;
  root.dataset.theme = dark ? "light" : "dark";
};
(async () => {
  const first = await getJSON(`/api/state?limit=1`);
  if (first.mode === "capture") {
    mode = "capture";
    document.title = "OCPP Witness — capture";
    document.querySelector("header h1").textContent = "OCPP Witness — recorded capture";
    $("stream").textContent = (first.sources || []).join(", ");
    $("token").parentElement.hidden = true;
    $("recorder").hidden = true;
    $("checks-note").textContent = "as the report judges them";
  }
  const state = await loadConnections();
  deviationsSeen = state.deviations.seen;
  $("f-deviations").textContent = deviationsSeen;
  const body = $("deviations").tBodies[0];
  body.replaceChildren(...state.deviations.recent.slice().reverse().slice(0, FEED).map(deviationRow));
  listen();
  loadVerdicts().catch(() => {});
  if (mode === "live") setInterval(() => loadVerdicts().catch(() => {}), 5000);
})();
</script>
</body>
</html>
"""#
}
