// Dashboard: plain SVG charts over the read-only ClickHouse-compatible endpoint (same origin).
"use strict";
const COLORS = ["#2f6fed", "#12a37a", "#e8793a", "#9b59d0", "#d64562", "#0ea5b7", "#8a6d3b"];
const $ = (id) => document.getElementById(id);
const esc = (s) => String(s).replace(/[&<>"']/g, (c) => ({"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;"}[c]));
const fmt = (n) => Number(n).toLocaleString("en-US");
const ago = (s) => (s < 120 ? s.toFixed(1) + " s" : s < 7200 ? (s / 60).toFixed(0) + " min" : s < 172800 ? (s / 3600).toFixed(1) + " h" : (s / 86400).toFixed(0) + " d");
const pct = (r) => (r === null || r === undefined ? "–" : (100 * r).toFixed(1) + "%");

async function sql(query, params = {}) {
  const qs = new URLSearchParams({query, default_format: "JSON"});
  for (const [k, v] of Object.entries(params)) qs.set("param_" + k, v);
  const resp = await fetch("/?" + qs.toString());
  if (!resp.ok) throw new Error(await resp.text());
  return (await resp.json()).data;
}

// The heat map's zone: UTC, the browser's own, and the zones senders ask for most.
const ZONES = ["UTC", "Europe/London", "Europe/Berlin", "America/New_York", "America/Chicago",
  "America/Los_Angeles", "America/Sao_Paulo", "Asia/Kolkata", "Asia/Tokyo", "Australia/Sydney"];
(function fillZones() {
  const own = Intl.DateTimeFormat().resolvedOptions().timeZone;
  const zones = own && !ZONES.includes(own) ? [ZONES[0], own, ...ZONES.slice(1)] : ZONES;
  $("tz").innerHTML = zones.map((z) => `<option>${esc(z)}</option>`).join("");
  $("tz").value = localStorage.getItem("opens-tz") || "UTC";
})();

function campaignFilter() {
  const c = $("campaign").value;
  return c ? {where: "campaign = {c:String}", params: {c}} : {where: "1", params: {}};
}

function renderCards(rows) {
  const sum = (k) => rows.reduce((a, r) => a + Number(r[k] || 0), 0);
  const sends = sum("sends"), uniq = sum("unique_opens"), human = sum("human_unique_opens");
  const cards = [
    ["sends", fmt(sends)], ["opens", fmt(sum("opens"))], ["unique opens", fmt(uniq)],
    ["human unique opens", fmt(human)], ["machine opens", fmt(sum("machine_opens"))],
    ["open rate", sends ? pct(uniq / sends) : "–"], ["human open rate", sends ? pct(human / sends) : "–"],
  ];
  $("cards").innerHTML = cards.map(([k, v]) => `<div class="card"><div class="v">${v}</div><div class="k">${k}</div></div>`).join("");
}

function rateCell(r, cls) {
  if (r === null || r === undefined) return "<td>–</td>";
  const w = Math.max(2, Math.min(120, 120 * r));
  return `<td><span class="rate ${cls}"><i style="width:${w}px"></i>${pct(r)}</span></td>`;
}

function renderCampaigns(rows) {
  $("campaigns").querySelector("tbody").innerHTML = rows.map((r) => `<tr>
    <td>${esc(r.campaign)}</td><td>${esc(r.category)}</td><td class="n">${fmt(r.sends)}</td>
    <td class="n">${fmt(r.opens)}</td><td class="n">${fmt(r.unique_opens)}</td>
    <td class="n">${fmt(r.human_unique_opens)}</td><td class="n">${fmt(r.machine_opens)}</td>
    <td class="n">${fmt(r.invalid_hits)}</td>${rateCell(r.open_rate, "")}${rateCell(r.human_open_rate, "h")}
    <td>${esc(r.last_open_at || "–")}</td></tr>`).join("");
  const sel = $("campaign"), current = sel.value;
  const names = rows.map((r) => r.campaign);
  const have = [...sel.options].slice(1).map((o) => o.value);
  if (names.join("\u0000") !== have.join("\u0000")) {
    sel.innerHTML = '<option value="">all campaigns</option>' + names.map((n) => `<option>${esc(n)}</option>`).join("");
    sel.value = names.includes(current) ? current : "";
  }
}

function lineChart(el, series, t0, t1) {
  const W = 900, H = 240, L = 48, R = 12, T = 10, B = 26;
  const top = Math.max(1, ...series.flatMap((s) => s.points.map((p) => p[1])));
  const step = Math.max(1, Math.ceil(top / 4));
  const max = step * 4;  // whole-number gridlines
  const x = (t) => L + ((t - t0) / Math.max(1, t1 - t0)) * (W - L - R);
  const y = (v) => H - B - (v / max) * (H - T - B);
  let svg = `<svg viewBox="0 0 ${W} ${H}" role="img" aria-label="opens over time">`;
  for (let i = 0; i <= 4; i++) {
    const v = step * i, yy = y(v);
    svg += `<line x1="${L}" x2="${W - R}" y1="${yy}" y2="${yy}" stroke="#e3e6ec"/><text x="${L - 6}" y="${yy + 4}" font-size="11" text-anchor="end" fill="#6b7385">${fmt(Math.round(v))}</text>`;
  }
  for (let i = 0; i <= 4; i++) {
    const t = t0 + ((t1 - t0) * i) / 4;
    const label = new Date(t).toISOString().slice(5, 16).replace("T", " ");
    const anchor = i === 0 ? "start" : i === 4 ? "end" : "middle";
    svg += `<text x="${x(t)}" y="${H - 6}" font-size="11" text-anchor="${anchor}" fill="#6b7385">${label}</text>`;
  }
  series.forEach((s, i) => {
    const pts = s.points.map((p) => `${x(p[0]).toFixed(1)},${y(p[1]).toFixed(1)}`).join(" ");
    const c = COLORS[i % COLORS.length];
    if (s.points.length === 1) svg += `<circle cx="${x(s.points[0][0])}" cy="${y(s.points[0][1])}" r="4" fill="${c}"/>`;
    svg += `<polyline fill="none" stroke="${c}" stroke-width="2" points="${pts}"/>`;
  });
  svg += "</svg>";
  const legend = series.map((s, i) => `<span><b style="background:${COLORS[i % COLORS.length]}"></b>${esc(s.name)}</span>`).join("");
  el.innerHTML = svg + `<div class="legend">${legend}</div>`;
}

async function renderTimeline() {
  const f = campaignFilter();
  const span = await sql(`SELECT toUnixTimestamp(min(minute)) AS a, toUnixTimestamp(max(minute)) AS b FROM opens_timeline WHERE ${f.where}`, f.params);
  if (!span.length || Number(span[0].b) === 0) { $("timeline").innerHTML = '<p class="muted">no opens yet</p>'; return; }
  const a = Number(span[0].a), b = Number(span[0].b);
  const minutes = Math.max(1, (b - a) / 60);
  const bucket = [1, 5, 15, 60, 180, 360, 1440].find((m) => minutes / m <= 240) || 1440;
  $("bucket").textContent = `(per ${bucket >= 60 ? bucket / 60 + " h" : bucket + " min"})`;
  const rows = await sql(`SELECT campaign, toUnixTimestamp(toStartOfInterval(minute, INTERVAL {b:UInt32} MINUTE)) AS t, sum(opens) AS opens
    FROM opens_timeline WHERE ${f.where} GROUP BY campaign, t ORDER BY campaign, t`, {...f.params, b: bucket});
  // Buckets without opens are zeros, not gaps the line would jump across.
  const t0 = Math.floor(a / (bucket * 60)) * bucket * 60, t1 = b;
  const by = new Map();
  for (const r of rows) {
    if (!by.has(r.campaign)) by.set(r.campaign, new Map());
    by.get(r.campaign).set(Number(r.t), Number(r.opens));
  }
  const series = [...by.entries()].slice(0, 7).map(([name, counts]) => {
    const points = [];
    for (let t = t0; t <= t1; t += bucket * 60) points.push([t * 1000, counts.get(t) || 0]);
    return {name, points};
  });
  lineChart($("timeline"), series, a * 1000, Math.max(b * 1000, a * 1000 + bucket * 60000));
}

async function renderHeatmap() {
  const f = campaignFilter();
  const tz = $("tz").value || "UTC";
  $("tzlabel").textContent = `(opens by weekday × hour, ${tz})`;
  const rows = await sql(`SELECT weekday, hour, sum(opens) AS opens FROM opens_by_local_hour(tz = {tz:String}) WHERE ${f.where} GROUP BY weekday, hour`, {...f.params, tz});
  const grid = {}; let max = 1;
  for (const r of rows) { grid[`${r.weekday}-${r.hour}`] = Number(r.opens); max = Math.max(max, Number(r.opens)); }
  const days = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"], cw = 17, ch = 20, L = 36, T = 16;
  let svg = `<svg viewBox="0 0 ${L + 24 * cw + 4} ${T + 7 * ch + 4}" role="img" aria-label="opens by weekday and hour">`;
  for (let h = 0; h < 24; h += 3) svg += `<text x="${L + h * cw + cw / 2}" y="11" font-size="10" text-anchor="middle" fill="#6b7385">${h}h</text>`;
  days.forEach((d, i) => {
    svg += `<text x="${L - 6}" y="${T + i * ch + 14}" font-size="11" text-anchor="end" fill="#6b7385">${d}</text>`;
    for (let h = 0; h < 24; h++) {
      const v = grid[`${i + 1}-${h}`] || 0;
      const alpha = v ? 0.15 + 0.85 * (v / max) : 0.04;
      svg += `<rect x="${L + h * cw}" y="${T + i * ch}" width="${cw - 2}" height="${ch - 2}" rx="3" fill="#2f6fed" fill-opacity="${alpha.toFixed(3)}"><title>${d} ${h}:00 ${esc(tz)}: ${fmt(v)} opens</title></rect>`;
    }
  });
  $("heatmap").innerHTML = svg + "</svg>";
}

function bars(el, rows, label, second = "unique (first human open)") {
  // One scale for both bars: a row's unique openers can outnumber its opens (a subscriber is
  // attributed to the country/client of the first open, which may lack a country).
  const max = Math.max(1, ...rows.flatMap((r) => [Number(r.opens), Number(r.unique_opens)]));
  el.innerHTML = rows.length ? rows.map((r) => `<div class="row"><span>${esc(label(r))}</span>
    <div><div class="bar" style="width:${(100 * Number(r.opens)) / max}%"></div>
    <div class="bar u" style="width:${(100 * Number(r.unique_opens)) / max}%;height:6px;margin-top:2px"></div></div>
    <span class="n" title="${fmt(r.unique_opens)} ${esc(second)}">${fmt(r.opens)}</span></div>`).join("") + `<div class="legend"><span><b style="background:#2f6fed"></b>opens</span><span><b style="background:#12a37a"></b>${esc(second)}</span></div>`
    : '<p class="muted">no opens yet</p>';
}

async function renderBreakdowns() {
  const f = campaignFilter();
  const clients = await sql(`SELECT client, device, sum(opens) AS opens, sum(unique_opens) AS unique_opens FROM opens_by_client WHERE ${f.where} GROUP BY client, device ORDER BY opens DESC LIMIT 10`, f.params);
  bars($("clients"), clients, (r) => `${r.client || "unknown"}${r.device ? " · " + r.device : ""}`);
  const countries = await sql(`SELECT country, sum(opens) AS opens, sum(unique_opens) AS unique_opens FROM opens_by_country WHERE ${f.where} GROUP BY country ORDER BY opens DESC LIMIT 10`, f.params);
  bars($("countries"), countries, (r) => r.country || "unknown");
  const machines = await sql(`SELECT machine, sum(opens) AS opens, sum(subscribers) AS unique_opens FROM opens_by_machine_reason WHERE ${f.where} GROUP BY machine ORDER BY opens DESC`, f.params);
  bars($("machines"), machines, (r) => r.machine.replace(/_/g, " "), "subscribers");
}

async function renderFreshness() {
  const rows = await sql("SELECT source, toString(last_event_at) AS last_event_at, lag_seconds FROM freshness ORDER BY source");
  $("fresh").querySelector("tbody").innerHTML = rows.map((r) => `<tr><td>${esc(r.source)}</td><td>${esc(r.last_event_at)}</td><td class="n">${ago(Number(r.lag_seconds))}</td></tr>`).join("");
  $("freshness").textContent = "updated " + new Date().toISOString().slice(11, 19) + " UTC";
}

// The toggle: probable machine opens count as a person's (campaign_summary's
// probable_machine_opens and human_unique_opens_with_probable, migration 0012).
function lenient(r) {
  if (!$("lenient").checked) return r;
  const human = Number(r.human_unique_opens_with_probable || 0), sends = Number(r.sends || 0);
  return {...r, human_unique_opens: human,
    machine_opens: Number(r.machine_opens || 0) - Number(r.probable_machine_opens || 0),
    human_open_rate: sends > 0 ? human / sends : null};
}

async function refresh() {
  try {
    const f = campaignFilter();
    const all = (await sql("SELECT * FROM campaign_summary ORDER BY campaign")).map(lenient);
    renderCampaigns(all);
    renderCards(f.params.c ? all.filter((r) => r.campaign === f.params.c) : all);
    await Promise.all([renderTimeline(), renderHeatmap(), renderBreakdowns(), renderFreshness()]);
  } catch (err) {
    $("freshness").textContent = "error: " + err.message.slice(0, 200);
  }
}

$("lenient").checked = new URLSearchParams(location.search).get("probable") === "human"
  || localStorage.getItem("opens-lenient") === "1";
$("lenient").addEventListener("change", () => { localStorage.setItem("opens-lenient", $("lenient").checked ? "1" : "0"); refresh(); });
$("campaign").addEventListener("change", refresh);
$("tz").addEventListener("change", () => { localStorage.setItem("opens-tz", $("tz").value); refresh(); });
refresh();
setInterval(refresh, 5000);
