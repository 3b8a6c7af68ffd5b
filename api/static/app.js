// carewatch web page: one vanilla JS module, no build step.
// Views (hash routes): #/board (alert board, live over SSE), #/household/<id>, #/fleet.
// The token lives in sessionStorage and is sent as a bearer header; the SSE stream is read with fetch()
// because EventSource cannot send headers (and a token in the URL would land in access logs).
// DOM is built with createElement/textContent only: no server data is ever parsed as HTML.

const API = "/api/v1";
const SEVERITIES = ["critical", "high", "normal", "low"];
const OUTCOMES = ["resident_ok", "needed_help", "emergency", "away", "false_alarm_device", "test", "other"];
const state = { me: null, alerts: new Map(), stream: null, lastEventId: null, ageTimer: null };

function h(tag, attrs = {}, ...children) {
  const el = tag.startsWith("svg:")
    ? document.createElementNS("http://www.w3.org/2000/svg", tag.slice(4))
    : document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    if (key.startsWith("on")) el.addEventListener(key.slice(2), value);
    else el.setAttribute(key, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

const token = () => sessionStorage.getItem("carewatch.token");

async function api(path, options = {}) {
  const response = await fetch(API + path, {
    ...options,
    headers: { Authorization: `Bearer ${token()}`, "Content-Type": "application/json", ...(options.headers || {}) },
  });
  if (response.status === 401) { signOut(); throw new Error("signed out"); }
  const body = response.status === 204 ? null : await response.json();
  if (!response.ok) throw new Error(body && (body.detail || body.title) || response.statusText);
  return body;
}

function announce(text) { document.getElementById("announcer").textContent = text; }

function age(iso) {
  const minutes = Math.max(0, Math.round((Date.now() - Date.parse(iso)) / 60000));
  if (minutes < 60) return `${minutes} min`;
  const hours = Math.floor(minutes / 60);
  return hours < 48 ? `${hours} h ${minutes % 60} min` : `${Math.floor(hours / 24)} d`;
}

// ---- sign-in ---------------------------------------------------------------------------------------
async function signIn(value) {
  sessionStorage.setItem("carewatch.token", value);
  try {
    state.me = await api("/whoami");
  } catch (error) {
    sessionStorage.removeItem("carewatch.token");
    throw error;
  }
}

function signOut() {
  sessionStorage.removeItem("carewatch.token");
  state.me = null;
  stopStream();
  render();
}

// ---- live stream -----------------------------------------------------------------------------------
function stopStream() {
  if (state.stream) state.stream.abort();
  state.stream = null;
  document.getElementById("live").classList.remove("on");
  document.getElementById("live").textContent = "";
}

async function startStream() {
  if (state.stream) return;
  const controller = new AbortController();
  state.stream = controller;
  const live = document.getElementById("live");
  while (!controller.signal.aborted) {
    try {
      const headers = { Authorization: `Bearer ${token()}` };
      if (state.lastEventId) headers["Last-Event-ID"] = state.lastEventId;
      const response = await fetch(`${API}/alerts/stream`, { headers, signal: controller.signal });
      if (!response.ok) throw new Error(`stream ${response.status}`);
      live.classList.add("on");
      live.textContent = "Live";
      const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
      let buffer = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += value;
        let cut;
        while ((cut = buffer.indexOf("\n\n")) >= 0) {
          handleEvent(buffer.slice(0, cut));
          buffer = buffer.slice(cut + 2);
        }
      }
    } catch (error) {
      if (controller.signal.aborted) return;
    }
    live.classList.remove("on");
    live.textContent = "Reconnecting…";
    await new Promise((resolve) => setTimeout(resolve, 3000));
  }
}

function handleEvent(block) {
  let id = null, data = "";
  for (const line of block.split("\n")) {
    if (line.startsWith("id: ")) id = line.slice(4);
    else if (line.startsWith("data: ")) data += line.slice(6);
  }
  if (!data) return;
  if (id) state.lastEventId = id;
  const alert = JSON.parse(data);
  const known = state.alerts.get(alert.alert_id);
  state.alerts.set(alert.alert_id, alert);
  if (!known && alert.status !== "resolved") announce(`New ${alert.severity} alert: ${alert.kind} at ${alert.household_id}`);
  if (location.hash.startsWith("#/board") || location.hash === "") renderBoard();
}

// ---- alert board -----------------------------------------------------------------------------------
async function loadBoard() {
  const query = "status=checking_in&status=open&status=notified&status=claimed&limit=500";
  const page = await api(`/alerts?${query}`);
  state.alerts = new Map(page.items.map((alert) => [alert.alert_id, alert]));
  renderBoard();
  startStream();
}

function renderBoard() {
  const view = document.getElementById("view");
  const open = [...state.alerts.values()].filter((alert) => alert.status !== "resolved");
  const columns = SEVERITIES.map((severity) => {
    const items = open.filter((alert) => alert.severity === severity)
      .sort((a, b) => Date.parse(a.opened_at) - Date.parse(b.opened_at));
    return h("section", { class: "column", "data-severity": severity, "aria-label": `${severity} alerts` },
      h("h3", {}, `${severity} (${items.length})`),
      items.length ? h("ul", { class: "cards" }, items.map(alertCard)) : h("p", { class: "empty" }, "None open"));
  });
  const focused = document.activeElement && document.activeElement.id;
  view.replaceChildren(h("h2", {}, "Open alerts"), h("div", { class: "board" }, columns));
  if (focused && document.getElementById(focused)) document.getElementById(focused).focus();
}

function alertCard(alert) {
  const id = alert.alert_id;
  const claimed = alert.status === "claimed";
  const actions = h("div", { class: "actions" });
  if (!claimed && state.me.role !== "device_provisioner") {
    const picker = state.me.role === "caregiver" ? null
      : h("label", {}, "Claim for caregiver",
          h("input", { id: `claim-for-${id}`, name: "caregiver", required: true, size: 10, autocomplete: "off" }));
    actions.append(...[picker, h("button", { type: "button", id: `claim-${id}`, onclick: () => claim(alert) }, "Claim")].filter(Boolean));
  }
  const outcome = h("select", { id: `outcome-${id}`, name: "outcome" }, OUTCOMES.map((o) => h("option", { value: o }, o.replaceAll("_", " "))));
  actions.append(
    h("label", { for: `outcome-${id}` }, "Outcome", outcome),
    h("button", { type: "button", class: "secondary", id: `resolve-${id}`, onclick: () => resolve(alert) }, "Resolve"),
  );
  return h("li", { class: "card", "data-severity": alert.severity, "data-alert-id": id, "data-status": alert.status },
    h("h4", {}, `${alert.kind.replaceAll("_", " ")} · `, h("a", { href: `#/household/${encodeURIComponent(alert.household_id)}` }, alert.household_id)),
    h("p", { class: "meta" },
      `#${id} · open ${age(alert.opened_at)} · escalation step ${alert.escalation_level} · `,
      claimed ? h("span", { class: "badge claimed" }, `claimed by ${alert.claimed_by}`)
        : h("span", { class: `badge ${alert.status === "checking_in" ? "checking" : ""}` }, alert.status.replaceAll("_", " "))),
    alert.checkin ? checkinLine(alert.checkin, alert.status) : null,
    h("p", { class: "evidence" }, alert.evidence),
    actions);
}

const CHANNEL_NAMES = { button: "call button", voice: "phone call", resident_sms: "SMS" };

function checkinLine(c, status) {
  // What the resident was asked and what came of it: while it waits, nobody has been paged yet.
  const by = c.channels.map((ch) => CHANNEL_NAMES[ch] || ch).join(" and ");
  const at = (iso) => new Date(iso).toLocaleTimeString(undefined, { hour: "2-digit", minute: "2-digit" });
  let text;
  if (c.status === "waiting" && status === "checking_in") {
    text = `Asking the resident (${by}): attempt ${c.attempt} of ${c.attempts}; pages the care plan at ${at(c.expires_at)} if nobody answers`;
  } else if (c.status === "answered") {
    text = `Resident answered ${c.answer} by ${CHANNEL_NAMES[c.answered_via] || c.answered_via.replaceAll("_", " ")} at ${at(c.answered_at)}`;
  } else if (c.status === "unanswered") {
    text = `Checked in with the resident at ${at(c.started_at)} by ${by}: no answer`;
  } else {
    text = `Check-in ${c.status}`;
  }
  return h("p", { class: "checkin", "data-checkin-status": c.status }, text);
}

async function claim(alert) {
  const caregiver = state.me.role === "caregiver" ? state.me.subject
    : (document.getElementById(`claim-for-${alert.alert_id}`).value || "").trim();
  if (!caregiver) { announce("Enter the caregiver who takes this alert"); return; }
  try {
    const updated = await api(`/alerts/${alert.alert_id}/claim`, { method: "POST", body: JSON.stringify({ caregiver_id: caregiver }) });
    state.alerts.set(updated.alert_id, updated);
    announce(`Alert ${updated.alert_id} claimed`);
    renderBoard();
  } catch (error) { announce(`Claim failed: ${error.message}`); }
}

async function resolve(alert) {
  const outcome = document.getElementById(`outcome-${alert.alert_id}`).value;
  try {
    const updated = await api(`/alerts/${alert.alert_id}/resolve`, {
      method: "POST", body: JSON.stringify({ actor: state.me.subject, outcome }),
    });
    state.alerts.set(updated.alert_id, updated);
    announce(`Alert ${updated.alert_id} resolved: ${outcome.replaceAll("_", " ")}`);
    renderBoard();
  } catch (error) { announce(`Resolve failed: ${error.message}`); }
}

// ---- household page --------------------------------------------------------------------------------
async function renderHousehold(householdId) {
  const view = document.getElementById("view");
  view.replaceChildren(h("p", {}, "Loading…"));
  const id = encodeURIComponent(householdId);
  const since = new Date(Date.now() - 7 * 864e5).toISOString();
  const [household, residents, plan, devices, alerts, checkins] = await Promise.all([
    api(`/households/${id}`), api(`/households/${id}/residents`), api(`/households/${id}/care-plan`),
    api(`/devices?household_id=${id}`), api(`/alerts?household_id=${id}&since=${encodeURIComponent(since)}&limit=200`),
    api(`/households/${id}/checkins`),
  ]);
  const meter = devices.items.find((device) => device.device_type === "water_meter");
  let chart = h("p", { class: "empty" }, "No water meter in this household.");
  if (meter) {
    const [usage, band] = await Promise.all([
      api(`/devices/${encodeURIComponent(meter.device_id)}/usage?start=${encodeURIComponent(since)}`),
      api(`/devices/${encodeURIComponent(meter.device_id)}/usage/band`),
    ]);
    chart = usageChart(usage.buckets, band, alerts.items, household.timezone, Date.parse(since));
  }
  view.replaceChildren(
    h("h2", {}, `Household ${household.household_id}`),
    h("p", { class: "meta" }, `${household.district || "no district"} · ${household.timezone}`),
    h("div", { class: "grid2" },
      h("section", { class: "panel", "aria-labelledby": "res-title" }, h("h3", { id: "res-title" }, "Residents"),
        h("ul", {}, residents.map((r) => h("li", {}, `${r.name}${r.birth_year ? ` (born ${r.birth_year})` : ""}`,
          r.medical_notes_visible && r.medical_notes ? h("div", { class: "hint" }, `Medical notes: ${r.medical_notes}`) : null)))),
      h("section", { class: "panel", "aria-labelledby": "plan-title" }, h("h3", { id: "plan-title" }, "Care plan"),
        plan.length ? h("ol", {}, plan.map((c) => h("li", {}, `${c.caregiver_id} · ${c.role.replaceAll("_", " ")} · tier ${c.tier}`)))
          : h("p", { class: "empty" }, "No contacts"))),
    h("section", { class: "panel chart", "aria-labelledby": "chart-title" },
      h("h3", { id: "chart-title" }, "Water use per hour, last 7 days"), chart,
      h("p", { class: "legend" }, h("span", { class: "l-use" }, "litres per hour"),
        h("span", { class: "l-band" }, "normal band (10th–90th percentile, last 28 days)"), h("span", { class: "l-alert" }, "alert"))),
    h("section", { class: "panel", "aria-labelledby": "checkin-title" }, h("h3", { id: "checkin-title" }, "Check-ins with the resident"),
      checkins.length ? checkinTable(checkins) : h("p", { class: "empty" }, "No check-ins")),
    h("section", { class: "panel", "aria-labelledby": "dev-title" }, h("h3", { id: "dev-title" }, "Devices"), deviceTable(devices.items)),
  );
}

function checkinTable(checkins) {
  const when = (iso) => new Date(iso).toLocaleString(undefined, { month: "numeric", day: "numeric", hour: "2-digit", minute: "2-digit" });
  return h("table", { id: "checkins" }, h("caption", { class: "visually-hidden" }, "Check-ins with the resident, newest first"),
    h("thead", {}, h("tr", {}, ["Asked", "Why", "How", "Attempts", "Result"].map((t) => h("th", { scope: "col" }, t)))),
    h("tbody", {}, checkins.map((c) => h("tr", { "data-checkin-status": c.status },
      h("td", {}, when(c.started_at)), h("td", {}, c.kind.replaceAll("_", " ")),
      h("td", {}, c.channels.map((ch) => CHANNEL_NAMES[ch] || ch).join(", ")), h("td", {}, `${c.attempt} of ${c.attempts}`),
      h("td", {}, c.status === "answered" ? `${c.answer} (${CHANNEL_NAMES[c.answered_via] || c.answered_via.replaceAll("_", " ")})`
        : c.status === "unanswered" ? "no answer: care plan paged" : c.status)))));
}

function deviceTable(devices) {
  return h("table", {}, h("caption", { class: "visually-hidden" }, "Devices and their health"),
    h("thead", {}, h("tr", {}, ["Device", "Type", "Online", "Battery", "Last seen"].map((t) => h("th", { scope: "col" }, t)))),
    h("tbody", {}, devices.map((d) => h("tr", {}, h("td", {}, d.device_id), h("td", {}, d.device_type.replaceAll("_", " ")),
      h("td", {}, d.online === null ? "unknown" : d.online ? "yes" : "NO"), h("td", {}, d.battery_pct === null ? "–" : `${d.battery_pct} %`),
      h("td", {}, d.last_seen_at ? `${age(d.last_seen_at)} ago` : "never")))));
}

function localHour(ms, timeZone) {
  return Number(new Intl.DateTimeFormat("en-GB", { hour: "numeric", hourCycle: "h23", timeZone }).format(new Date(ms)));
}

function usageChart(buckets, band, alerts, timeZone, startMs) {
  const W = 840, H = 260, L = 44, R = 8, T = 10, B = 28, hours = 7 * 24, hourMs = 36e5;
  const bandByHour = new Map(band.map((b) => [b.hour_of_day, b]));
  const top = Math.max(10, ...buckets.map((b) => b.consumption_l), ...band.map((b) => b.p90_l)) * 1.1;
  const x = (ms) => L + ((ms - startMs) / (hours * hourMs)) * (W - L - R);
  const y = (litres) => T + (1 - litres / top) * (H - T - B);
  const svg = h("svg:svg", { viewBox: `0 0 ${W} ${H}`, role: "img", "aria-label": `Hourly water use over the last 7 days with the normal band; ${buckets.length} hours with data, ${alerts.length} alerts` });
  const upper = [], lower = [], median = [];
  for (let i = 0; i <= hours; i++) {
    const ms = startMs + i * hourMs, p = bandByHour.get(localHour(ms, timeZone));
    if (!p) continue;
    upper.push(`${x(ms).toFixed(1)},${y(p.p90_l).toFixed(1)}`);
    lower.unshift(`${x(ms).toFixed(1)},${y(p.p10_l).toFixed(1)}`);
    median.push(`${x(ms).toFixed(1)},${y(p.p50_l).toFixed(1)}`);
  }
  if (upper.length) {
    svg.append(h("svg:polygon", { class: "band", points: [...upper, ...lower].join(" ") }));
    svg.append(h("svg:polyline", { class: "median", points: median.join(" ") }));
  }
  const barWidth = Math.max(1, (W - L - R) / hours - 1);
  for (const b of buckets) {
    const ms = Date.parse(b.bucket);
    if (ms < startMs) continue;
    svg.append(h("svg:rect", { class: "bar", x: x(ms).toFixed(1), y: y(b.consumption_l).toFixed(1), width: barWidth.toFixed(1),
      height: Math.max(0, y(0) - y(b.consumption_l)).toFixed(1) }, h("svg:title", {}, `${new Date(ms).toLocaleString()}: ${b.consumption_l.toFixed(1)} L`)));
  }
  const axis = h("svg:g", { class: "axis" }, h("svg:line", { x1: L, x2: W - R, y1: y(0), y2: y(0) }));
  for (const litres of [0, top / 2, top]) axis.append(h("svg:text", { x: 2, y: y(litres) + 4 }, `${Math.round(litres)} L`));
  for (let day = 0; day <= 7; day++) {
    const ms = startMs + day * 24 * hourMs;
    axis.append(h("svg:text", { x: x(ms) - 12, y: H - 8 }, new Date(ms).toLocaleDateString(undefined, { month: "numeric", day: "numeric", timeZone })));
  }
  svg.append(axis);
  for (const alert of alerts) {
    const ms = Date.parse(alert.started_at);
    if (ms < startMs) continue;
    svg.append(h("svg:g", {}, h("svg:title", {}, `${alert.kind} (${alert.severity}) #${alert.alert_id}`),
      h("svg:line", { class: "marker", x1: x(ms), x2: x(ms), y1: T, y2: y(0) }),
      h("svg:polygon", { class: "marker-head", points: `${x(ms) - 5},${T} ${x(ms) + 5},${T} ${x(ms)},${T + 8}` })));
  }
  return svg;
}

// ---- fleet page ------------------------------------------------------------------------------------
async function renderFleet() {
  const view = document.getElementById("view");
  const fleet = await api("/fleet/health");
  const tiles = [["Devices", fleet.devices_total], ["Offline", fleet.offline], ["Low battery", fleet.low_battery],
    ["Silent meters", fleet.silent_meters], ["Sequence gaps", fleet.with_seq_gaps]];
  view.replaceChildren(
    h("h2", {}, "Fleet health"),
    h("div", { class: "tiles" }, tiles.map(([label, value]) => h("div", { class: "tile" }, h("strong", {}, value), label))),
    fleet.problem_devices.length ? h("table", {}, h("caption", { class: "visually-hidden" }, "Devices with problems"),
      h("thead", {}, h("tr", {}, ["Device", "Household", "Problems", "Battery", "Last seen", "Missing messages (24 h)"].map((t) => h("th", { scope: "col" }, t)))),
      h("tbody", {}, fleet.problem_devices.map((d) => h("tr", {}, h("td", {}, d.device_id),
        h("td", {}, h("a", { href: `#/household/${encodeURIComponent(d.household_id)}` }, d.household_id)),
        h("td", {}, d.problems.map((p) => p.replaceAll("_", " ")).join(", ")), h("td", {}, d.battery_pct ?? "–"),
        h("td", {}, d.last_seen_at ? `${age(d.last_seen_at)} ago` : "never"), h("td", {}, d.seq_gaps_24h))))) : h("p", { class: "empty" }, "No problems."));
}

// ---- routing ---------------------------------------------------------------------------------------
async function render() {
  const signedIn = Boolean(state.me);
  document.getElementById("login").hidden = signedIn;
  document.getElementById("nav").hidden = !signedIn;
  document.getElementById("logout").hidden = !signedIn;
  document.getElementById("whoami").textContent = signedIn ? `${state.me.role} ${state.me.subject}${state.me.district ? ` · ${state.me.district}` : ""}` : "";
  const view = document.getElementById("view");
  if (!signedIn) { view.replaceChildren(); return; }
  clearInterval(state.ageTimer);
  const route = location.hash.replace(/^#\/?/, "");
  try {
    if (route.startsWith("household/")) await renderHousehold(decodeURIComponent(route.slice("household/".length)));
    else if (route === "fleet") await renderFleet();
    else {
      await loadBoard();
      state.ageTimer = setInterval(renderBoard, 30000);
    }
  } catch (error) {
    view.replaceChildren(h("p", { class: "error", role: "alert" }, `Could not load: ${error.message}`));
  }
}

document.getElementById("login-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const error = document.getElementById("login-error");
  error.textContent = "";
  try {
    await signIn(document.getElementById("token").value.trim());
    document.getElementById("token").value = "";
    await render();
  } catch (e) { error.textContent = "That token was not accepted."; }
});
document.getElementById("logout").addEventListener("click", signOut);
document.getElementById("goto").addEventListener("submit", (event) => {
  event.preventDefault();
  location.hash = `#/household/${encodeURIComponent(document.getElementById("goto-id").value.trim())}`;
});
window.addEventListener("hashchange", render);

(async () => {
  if (token()) { try { state.me = await api("/whoami"); } catch { state.me = null; } }
  await render();
})();
