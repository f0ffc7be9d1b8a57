// MissionControl page: one SSE stream in, JSON commands out. No external assets.
"use strict";
const $ = (id) => document.getElementById(id);
const LEVELS = ["TRACE", "DEBUG", "INFO", "STATUS", "WARNING", "CRITICAL"];
const STEADY = new Set(["NEW", "INIT", "ORBIT", "RUN", "SAFE", "ERROR", "DEAD"]);
const ALLOWED = {  // per-satellite buttons: which transitions each state allows
  NEW: ["initialize", "shutdown"], INIT: ["initialize", "launch", "shutdown"],
  ORBIT: ["land", "start", "reconfigure"], RUN: ["stop"],
  SAFE: ["initialize", "shutdown"], ERROR: ["initialize", "shutdown"],
};
const S = { header: null, sats: new Map(), logs: [], metrics: [], series: new Map(), charts: [],
  token: sessionStorage.getItem("mc-token") || "", tokenRequired: false };

function el(tag, attrs = {}, ...kids) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") e.className = v; else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v);
  }
  for (const kid of kids) e.append(kid instanceof Node ? kid : document.createTextNode(String(kid)));
  return e;
}
function stateClass(st) { return "state " + (STEADY.has(st) ? "state-" + st : "state-transitional"); }
function fmtDuration(s) {
  if (s === null || s === undefined) return "–";
  s = Math.floor(s); const h = Math.floor(s / 3600), m = Math.floor(s / 60) % 60, x = s % 60;
  return (h ? h + ":" : "") + String(m).padStart(h ? 2 : 1, "0") + ":" + String(x).padStart(2, "0");
}
function fmtNum(v) { return Math.abs(v) >= 100 ? v.toFixed(0) : v.toPrecision(3); }

// --- requests --------------------------------------------------------------------------------
async function api(path, opts = {}) {
  const headers = Object.assign({}, opts.headers || {});
  if (S.token) headers["X-Operator-Token"] = S.token;
  const res = await fetch(path, Object.assign({}, opts, { headers }));
  let body = null;
  try { body = await res.json(); } catch (e) { body = { error: res.statusText }; }
  if (!res.ok) throw new Error((body && body.error) || res.statusText);
  return body;
}
function showMsg(text, ok) { const m = $("control-msg"); m.textContent = text; m.className = "msg " + (ok ? "ok" : "error"); }
async function sendCommand(verb, targets, extra = {}) {
  const req = Object.assign({ verb, targets: targets || null }, extra);
  if (verb === "initialize" || verb === "reconfigure") req.config = $("config-select").value || null;
  if (verb === "start" && !targets) req.run_id = $("run-id").value.trim() || null;
  try {
    const res = await api("/api/command", { method: "POST", body: JSON.stringify(req),
      headers: { "Content-Type": "application/json" } });
    const bad = Object.entries(res.replies).filter(([, r]) => !r.ok);
    if (bad.length) showMsg(bad.map(([n, r]) => `${n}: ${r.type}: ${r.verb}`).join("\n"), false);
    else showMsg(`${verb}: ${Object.keys(res.replies).length} satellite(s) accepted`, true);
    return res;
  } catch (e) { showMsg(`${verb}: ${e.message}`, false); return null; }
}

// --- header and buttons -------------------------------------------------------------------------
function renderHeader(h) {
  S.header = h;
  $("h-group").textContent = h.group; $("h-count").textContent = h.satellites;
  const st = $("h-state"); st.textContent = h.state; st.className = stateClass(h.state) + (h.mixed ? " mixed" : "");
  $("h-run").textContent = h.run_id ? `${h.run_id} (next ${h.next_run_id})` : `next ${h.next_run_id}`;
  $("h-duration").textContent = fmtDuration(h.duration);
  const cond = $("h-condition"); cond.textContent = h.condition || "–";
  cond.title = h.condition_detail || (h.condition_source === "states" ? "from the satellites' states" : "");
  cond.dataset.source = h.condition_source || ""; cond.className = h.condition && h.condition !== "GOOD" ? "bad-condition" : "";
  renderCounters(h.counters);
  for (const [verb, ok] of Object.entries(h.allowed)) { const b = $("btn-" + verb); if (b) b.disabled = !ok; }
  const rid = $("run-id"); rid.placeholder = h.next_run_id;
}
function renderCounters(c) {
  $("h-warnings").textContent = $("c-warning").textContent = c.WARNING;
  $("h-critical").textContent = $("c-critical").textContent = c.CRITICAL;
}

// --- satellites -------------------------------------------------------------------------------
function renderSat(row, batch) {
  S.sats.set(row.name, row);
  let tr = document.querySelector(`#sat-body tr[data-name="${CSS.escape(row.name)}"]`);
  if (!tr) {
    tr = el("tr", { "data-name": row.name });
    for (let i = 0; i < 8; i++) tr.append(el("td"));
    const rows = [...$("sat-body").children];
    const after = rows.find((r) => r.dataset.name.toLowerCase() > row.name.toLowerCase());
    $("sat-body").insertBefore(tr, after || null);
  }
  const c = tr.children;
  c[0].textContent = row.name; c[1].textContent = row.type;
  const shown = row.state === "DEAD" && row.last_state !== "?" && row.last_state !== "DEAD"
    ? `DEAD (${row.last_state})` : row.state;
  c[2].replaceChildren(el("span", { class: stateClass(row.state) + " sat-state" }, shown));
  c[3].textContent = row.status; c[4].textContent = row.role; c[5].textContent = row.lives;
  c[6].textContent = row.last_reply; c[6].className = row.reply_ok ? "reply" : "reply reply-error";
  const cmds = el("span");
  for (const verb of ALLOWED[row.state] || []) {
    cmds.append(el("button", { class: "small", "data-verb": verb, onclick: () => sendCommand(verb, [row.name],
      verb === "start" ? { run_id: $("run-id").value.trim() || null } : {}) }, verb), " ");
  }
  if (row.state !== "DEAD") cmds.append(el("button", { class: "small cmd-open", onclick: () => openCommands(row.name) }, "commands…"));
  c[7].replaceChildren(cmds);
  if (!batch) fillSenders();
}
async function openCommands(name) {
  $("cmd-form").hidden = false; $("cmd-target").textContent = name; $("cmd-help").textContent = "asking get_commands…";
  try {
    const list = await api("/api/commands/" + encodeURIComponent(name));
    S.cmdList = list; S.cmdTarget = name;
    $("cmd-select").replaceChildren(...list.map((c) => el("option", { value: c.name }, c.name)));
    chooseCommand();
  } catch (e) { $("cmd-help").textContent = e.message; }
}
function chooseCommand() {
  const cmd = S.cmdList.find((c) => c.name === $("cmd-select").value);
  $("cmd-help").textContent = cmd ? cmd.help : "";
  const box = $("cmd-args"); box.replaceChildren();
  for (const p of (cmd ? cmd.params : [])) {
    const type = p.type === "int" || p.type === "float" ? "number" : p.type === "bool" ? "checkbox" : "text";
    const input = el("input", { type, "data-name": p.name, "data-type": p.type, placeholder: `${p.name}: ${p.type}`, size: 12 });
    if (p.type === "float") input.step = "any";
    box.append(el("label", {}, p.name + " ", input), " ");
  }
}
function readArgs() {
  const args = [];
  for (const input of $("cmd-args").querySelectorAll("input")) {
    const t = input.dataset.type, v = input.value;
    if (t === "int") args.push(parseInt(v, 10));
    else if (t === "float") args.push(parseFloat(v));
    else if (t === "bool") args.push(input.checked);
    else if (t === "dict" || t === "list") args.push(JSON.parse(v || (t === "dict" ? "{}" : "[]")));
    else args.push(v);
  }
  return args;
}
async function sendCustom() {
  const verb = $("cmd-select").value; let args;
  try { args = readArgs(); } catch (e) { showMsg(`${verb}: ${e.message}`, false); return; }
  const structural = ["initialize", "start", "reconfigure"].includes(verb);
  const extra = structural ? (verb === "start" ? { run_id: args[0] || null } : {}) : { args: args.length ? args : null };
  await sendCommand(verb, [S.cmdTarget], extra);
}

// --- logs ---------------------------------------------------------------------------------------
function logFilter() {
  return { level: LEVELS.indexOf($("log-level").value), sender: $("log-sender").value.trim().toLowerCase(),
    topic: $("log-topic").value.trim().toLowerCase(), text: $("log-text").value.trim().toLowerCase() };
}
function logMatches(e, f) {
  if (LEVELS.indexOf(e.level) < f.level) return false;
  if (f.sender && e.sender.toLowerCase() !== f.sender) return false;
  if (f.topic && e.topic.toLowerCase() !== f.topic) return false;
  return !f.text || e.message.toLowerCase().includes(f.text);
}
function logRow(e) {
  const t = new Date(e.time * 1000).toTimeString().slice(0, 8);
  return el("tr", { class: "lvl-" + e.level }, el("td", {}, t), el("td", {}, e.level), el("td", {}, e.sender),
    el("td", {}, e.topic), el("td", {}, e.message));
}
function renderLogs() {
  const f = logFilter(); const shown = S.logs.filter((e) => logMatches(e, f)).slice(-500);
  $("log-body").replaceChildren(...shown.reverse().map(logRow));
  $("log-shown").textContent = `${shown.length} shown of ${S.logs.length}`;
}
function addLog(e) {
  S.logs.push(e); if (S.logs.length > 2000) S.logs.shift();
  if (logMatches(e, logFilter())) {
    $("log-body").prepend(logRow(e));
    while ($("log-body").children.length > 500) $("log-body").lastChild.remove();
  }
  $("log-shown").textContent = `${$("log-body").children.length} shown of ${S.logs.length}`;
}

// --- metrics ------------------------------------------------------------------------------------
const key = (s, m) => s + "\u0000" + m;
function renderMetricList(list) {
  S.metrics = list;
  const senders = [...new Set(list.map((m) => m.sender))].sort();
  setOptions($("m-sender"), senders);
  fillMetricSelect();
  const stale = list.filter((m) => m.stale).map((m) => `${m.sender} ${m.metric}`);
  $("m-list").textContent = stale.length ? "not announced any more / disconnected: " + stale.join(", ") : "";
  for (const ch of S.charts) ch.title.replaceChildren(...ch.keys.map(([s, m], i) => {
    const meta = list.find((x) => x.sender === s && x.metric === m);
    return el("span", { class: meta && meta.stale ? "stale" : "" }, (i ? " · " : "") + `${s} ${m}` + (meta && meta.stale ? " (stale)" : ""));
  }));
}
function fillMetricSelect() {
  const s = $("m-sender").value;
  const names = S.metrics.filter((m) => m.sender === s).map((m) => m.metric);
  setOptions($("m-metric"), names);
}
function setOptions(sel, names) {  // only when they changed: an open list or a choice stays
  if ([...sel.options].map((o) => o.value).join("\n") === names.join("\n")) return;
  const cur = sel.value;
  sel.replaceChildren(...names.map((n) => el("option", { value: n }, n)));
  if (names.includes(cur)) sel.value = cur;
}
async function addSeries(newChart) {
  const s = $("m-sender").value, m = $("m-metric").value;
  if (!s || !m) return;
  if (!S.series.has(key(s, m))) {
    const res = await api(`/api/series?sender=${encodeURIComponent(s)}&metric=${encodeURIComponent(m)}`);
    S.series.set(key(s, m), res.points);
  }
  let chart = S.charts[S.charts.length - 1];
  if (newChart || !chart) chart = makeChart();
  if (!chart.keys.some(([a, b]) => a === s && b === m)) chart.keys.push([s, m]);
  chart.rebuild(); renderMetricList(S.metrics);
}
const COLOURS = ["#2e90fa", "#f04438", "#12b76a", "#f79009", "#7a5af8", "#ee46bc"];
function makeChart() {
  const box = el("div", { class: "chart" }); const title = el("div", { class: "title" });
  const plotBox = el("div", { class: "plot" }); box.append(title, plotBox); $("charts").append(box);
  const chart = { keys: [], title, box, plot: null, points: 0 };
  chart.rebuild = () => {
    const xs = new Set();
    for (const [s, m] of chart.keys) for (const [t] of S.series.get(key(s, m)) || []) xs.add(t);
    const x = [...xs].sort((a, b) => a - b);
    const data = [x, ...chart.keys.map(([s, m]) => {
      const map = new Map(S.series.get(key(s, m)) || []); return x.map((t) => (map.has(t) ? map.get(t) : null));
    })];
    chart.points = x.length; box.dataset.points = String(x.length);
    const width = Math.max(300, plotBox.clientWidth || 520);
    if (!chart.plot || chart.plot.series.length !== chart.keys.length + 1) {
      if (chart.plot) chart.plot.destroy();
      chart.plot = new uPlot({ width, height: 180, legend: { show: true },
        series: [{}, ...chart.keys.map(([s, m], i) => ({ label: `${s} ${m}`, stroke: COLOURS[i % COLOURS.length],
          width: 1.5, spanGaps: true, points: { show: false } }))],
        axes: [{}, { size: 60 }] }, data, plotBox);
    } else chart.plot.setData(data);
  };
  S.charts.push(chart); return chart;
}
function addPoint(p) {
  const k = key(p.sender, p.metric);
  if (!S.metrics.some((m) => m.sender === p.sender && m.metric === p.metric)) {
    S.metrics.push({ sender: p.sender, metric: p.metric, unit: p.unit, stale: false });
    renderMetricList(S.metrics);
  }
  const pts = S.series.get(k); if (!pts) return;
  pts.push([p.t, p.v]); if (pts.length > 600) pts.shift();
  for (const ch of S.charts) if (ch.keys.some(([a, b]) => key(a, b) === k)) ch.dirty = true;
}
setInterval(() => { for (const ch of S.charts) if (ch.dirty) { ch.dirty = false; ch.rebuild(); } }, 500);

// --- live data and runs -------------------------------------------------------------------------
function fillSenders() {  // histogram choices: the live tap's senders, else the satellites
  const names = S.liveSenders && S.liveSenders.length ? S.liveSenders : [...S.sats.keys()].sort();
  setOptions($("hist-sender"), names);
}
function rateRows(rows, live) {
  if (!rows.length) return [el("tr", {}, el("td", { colspan: 5, class: "help" },
    live ? "no records through the receivers yet" : "no transmitter has published TX_RECORDS yet"))];
  return rows.map((r) => el("tr", { class: r.stale ? "stale" : "", "data-sender": r.sender },
    el("td", {}, r.sender), el("td", { class: "num rps" }, fmtNum(r.records_per_s)),
    el("td", { class: "num mbps" }, fmtNum(r.mb_per_s)), el("td", { class: "num" }, r.records),
    el("td", { class: "num" }, live ? r.dropped : "–")));
}
async function refreshRates() {  // without the live tap: from the transmitters' metrics
  if (S.liveOn) return;
  try { $("rates-body").replaceChildren(...rateRows(await api("/api/rates"), false)); }
  catch (e) { /* shown on the next refresh */ }
}
function onLive(d) {
  if (d.error) { $("hist-msg").textContent = d.error; return; }
  $("rates-body").replaceChildren(...rateRows(d.rates, true));
  S.liveSenders = d.rates.map((r) => r.sender); fillSenders();
  if (d.histogram) drawHistogram(d.histogram);
}
function drawHistogram(h) {
  const c = $("hist"), g = c.getContext("2d"); g.clearRect(0, 0, c.width, c.height);
  c.dataset.bins = h.counts.length; c.dataset.values = h.values || 0;
  if (!h.counts.length) { $("hist-msg").textContent = `${h.sender}: no values yet`; return; }
  const max = Math.max(1, ...h.counts), w = (c.width - 50) / h.counts.length, top = 8, bottom = 18;
  const plot = c.height - top - bottom;
  g.fillStyle = "#667085"; g.font = "11px system-ui, sans-serif";
  g.fillText(String(max), 2, top + 8); g.fillText("0", 2, c.height - bottom);
  const label = (v) => (Number.isInteger(v) ? String(v) : fmtNum(v));
  g.fillText(label(h.edges[0]), 48, c.height - 4);
  const hi = label(h.edges[h.edges.length - 1]); g.fillText(hi, c.width - 4 - g.measureText(hi).width, c.height - 4);
  g.fillStyle = "#2e90fa";
  h.counts.forEach((n, i) => { const bh = (n / max) * plot; g.fillRect(48 + i * w + 1, top + plot - bh, Math.max(1, w - 2), bh); });
  $("hist-msg").textContent = `${h.sender}: last ${h.values} values in ${h.counts.length} bins`;
}
async function refreshRuns() {
  const res = await api("/api/runs").catch((e) => ({ available: false, reason: e.message, runs: [] }));
  $("runs-msg").textContent = res.available ? (res.runs.length ? "" : "no runs in the catalog yet") : res.reason;
  if (document.activeElement && document.activeElement.classList.contains("comment")) return;
  $("runs-body").replaceChildren(...res.runs.map((r) => {
    const input = el("input", { class: "comment", size: 24, value: r.comment });
    const save = el("button", { class: "small", onclick: async () => {
      try { await api("/api/runs/comment", { method: "POST", body: JSON.stringify({ run_id: r.run_id, comment: input.value }) }); save.textContent = "saved"; }
      catch (e) { save.textContent = e.message; }
    } }, "save");
    return el("tr", {}, el("td", {}, r.run_id), el("td", {}, r.condition), el("td", {}, r.records), el("td", {}, input, " ", save));
  }));
}

// --- stream -------------------------------------------------------------------------------------
function applySnapshot(snap) {
  renderHeader(snap.header);
  $("sat-body").replaceChildren(); S.sats.clear();
  for (const row of snap.satellites) renderSat(row, true);
  fillSenders();
  S.logs = snap.logs; renderLogs(); renderMetricList(snap.metrics);
  if (!S.snapshotAt) S.snapshotAt = performance.now();  // ms since navigation started
  markReady();
}
function markReady() {  // ready: wired, configurations loaded and the first snapshot shown
  if (S.initDone && S.snapshotAt && !document.body.dataset.ready) {
    document.body.dataset.readyMs = String(Math.round(performance.now()));
    document.body.dataset.ready = "1";
  }
}
function connect() {
  const es = new EventSource("/api/stream");
  es.onopen = () => { $("conn").textContent = "live"; $("conn").className = "conn-on"; };
  es.onerror = () => { $("conn").textContent = "reconnecting"; $("conn").className = "conn-off"; };
  const on = (kind, fn) => es.addEventListener(kind, (ev) => fn(JSON.parse(ev.data)));
  on("snapshot", applySnapshot); on("header", renderHeader); on("sat", renderSat);
  on("log", addLog); on("counters", renderCounters); on("metrics", renderMetricList); on("point", addPoint);
  on("live", onLive);
  document.body.dataset.stream = "connected";
}

async function loadConfigs(select) {
  const c = await api("/api/configs");
  const opts = [...c.files, ...c.uploaded];
  $("config-select").replaceChildren(...opts.map((n) => el("option", { value: n }, n)));
  $("config-select").value = select || c.default || opts[0] || "";
}
async function checkToken() {
  try { await api("/api/token", { method: "POST" }); $("token-msg").textContent = S.token ? "operator" : "local operator"; $("token-msg").className = ""; }
  catch (e) { $("token-msg").textContent = e.message; $("token-msg").className = "error"; }
}
function wire() {
  for (const b of $("buttons").querySelectorAll("button")) b.addEventListener("click", () => sendCommand(b.dataset.verb, null));
  $("token").value = S.token;
  $("token-save").addEventListener("click", () => { S.token = $("token").value; sessionStorage.setItem("mc-token", S.token); checkToken(); });
  $("config-file").addEventListener("change", async () => {
    const f = $("config-file").files[0]; if (!f) return;
    try {
      const res = await api("/api/config/upload?name=" + encodeURIComponent(f.name), { method: "POST", body: await f.arrayBuffer() });
      await loadConfigs(res.name); showMsg(`uploaded ${f.name}`, true);
    } catch (e) { showMsg(`upload ${f.name}: ${e.message}`, false); }
    $("config-file").value = "";
  });
  $("config-view").addEventListener("click", async () => {
    const pre = $("config-sections");
    if (!pre.hidden) { pre.hidden = true; return; }
    try { pre.textContent = JSON.stringify(await api("/api/config/sections?name=" + encodeURIComponent($("config-select").value)), null, 2); pre.hidden = false; }
    catch (e) { showMsg(e.message, false); }
  });
  for (const id of ["log-level", "log-sender", "log-topic", "log-text"]) $(id).addEventListener("input", renderLogs);
  $("m-sender").addEventListener("change", fillMetricSelect);
  $("m-add").addEventListener("click", () => addSeries(false));
  $("m-new").addEventListener("click", () => addSeries(true));
  $("cmd-select").addEventListener("change", chooseCommand);
  $("cmd-send").addEventListener("click", sendCustom);
  $("cmd-close").addEventListener("click", () => { $("cmd-form").hidden = true; });
  $("hist-go").addEventListener("click", async () => {
    try { const sender = $("hist-sender").value; await api("/api/live?sender=" + encodeURIComponent(sender), { method: "POST" }); $("hist-msg").textContent = `${sender}: waiting for data…`; }
    catch (e) { $("hist-msg").textContent = e.message; }
  });
}
async function init() {
  wire(); connect();
  const info = await api("/api/info");
  S.tokenRequired = info.token_required; $("token-box").hidden = !info.token_required;
  S.liveOn = !info.live;
  if (info.live) { $("hist-msg").textContent = info.live; $("hist").hidden = true; $("hist-go").disabled = true; }
  if (info.token_required && S.token) checkToken();
  await loadConfigs().catch((e) => showMsg(e.message, false));
  refreshRates(); refreshRuns();
  setInterval(refreshRates, 2000); setInterval(refreshRuns, 5000);
  S.initDone = true; markReady();
}
init();
