// carewatch web page: one vanilla JS module, no build step.
// Views (hash routes): #/board (alert board, live over SSE), #/household/<id>, #/fleet, #/report.
// The token lives in sessionStorage and is sent as a bearer header; the SSE stream is read with fetch()
// because EventSource cannot send headers (and a token in the URL would land in access logs).
// DOM is built with createElement/textContent only: no server data is ever parsed as HTML in the page
// (the monthly report, HTML rendered by the server, is shown in a sandboxed frame of its own).
// Languages: English and Simplified Chinese. The choice (the switch in the header, remembered in
// localStorage; else the browser's languages) sets <html lang>, the page's text (t(), from the gettext
// catalogue "web" served as /i18n/<lang>.json) and the API's Accept-Language, so alert evidence and
// errors come back in it too. Ids (households, devices, caregivers) are shown as they are.

const API = "/api/v1";
const LANGUAGES = ["zh-CN", "en"];
const SEVERITIES = ["critical", "high", "normal", "low"];
const OUTCOMES = ["resident_ok", "needed_help", "emergency", "away", "false_alarm_device", "test", "other"];
const state = { me: null, alerts: new Map(), stream: null, lastEventId: null, ageTimer: null, lang: "en", catalogue: {} };

// ---- languages -------------------------------------------------------------------------------------
// N_ marks text translated later (tables below); t translates now and fills {name} placeholders.
// NC_ adds a context (gettext msgctxt) where English uses one word for two things ("smoke alarm").
const N_ = (message) => message;
const NC_ = (context, message) => [context, message];
function t(message, params = {}) {
  const key = Array.isArray(message) ? `${message[0]}\u0004${message[1]}` : message;
  const text = state.catalogue[key] || (Array.isArray(message) ? message[1] : message);
  return text.replace(/\{(\w+)\}/g, (whole, name) => (name in params ? String(params[name]) : whole));
}

const SEVERITY_TEXT = { critical: N_("critical"), high: N_("high"), normal: N_("normal"), low: N_("low") };
const KIND_TEXT = {
  sos: NC_("alert kind", "emergency call"), smoke: NC_("alert kind", "smoke alarm"),
  inactivity: NC_("alert kind", "no water use"), routine_missed: NC_("alert kind", "missed routine"),
  continuous_flow: NC_("alert kind", "continuous water flow"), excessive_use: NC_("alert kind", "excessive water use"),
  device_offline: NC_("alert kind", "device offline"), service_request: NC_("alert kind", "service request"),
  maintenance: NC_("alert kind", "device maintenance"), visit_overdue: NC_("alert kind", "home visit overdue"),
};
const STATUS_TEXT = {
  checking_in: N_("checking in"), open: N_("open"), notified: N_("notified"), claimed: N_("claimed"), resolved: N_("resolved"),
};
const OUTCOME_TEXT = {
  resident_ok: N_("resident OK"), needed_help: N_("needed help"), emergency: N_("emergency"), away: N_("away from home"),
  false_alarm_device: N_("false alarm (device)"), test: N_("test"), other: N_("other"),
};
const ROLE_TEXT = {
  family: N_("family"), volunteer: N_("volunteer partner"), committee_staff: N_("neighbourhood committee"),
  social_worker: N_("social worker"), supervisor: N_("supervisor"), caregiver: N_("caregiver"), operator: N_("operator"),
  admin: N_("administrator"), device_provisioner: N_("device installer"),
};
const DEVICE_TEXT = { water_meter: N_("water meter"), smoke_alarm: N_("smoke alarm"), call_button: N_("call button") };
const PROBLEM_TEXT = {
  offline: N_("offline"), low_battery: N_("low battery"), silent_meter: N_("silent meter"), seq_gaps: N_("missing messages"),
};
const label = (table, value) => (value in table ? t(table[value]) : String(value).replaceAll("_", " "));

async function chosenLanguage() {
  const saved = localStorage.getItem("carewatch.lang");
  if (LANGUAGES.includes(saved)) return saved;
  // The installation's default (the demo's is zh-CN), before the browser's own preference.
  try {
    const chosen = (await (await fetch("/i18n/default.json")).json()).language;
    if (LANGUAGES.includes(chosen)) return chosen;
  } catch { /* no default: the browser decides */ }
  for (const tag of navigator.languages || [navigator.language || ""]) {
    const primary = String(tag).toLowerCase().split("-")[0];
    if (primary === "zh") return "zh-CN";
    if (primary === "en") return "en";
  }
  return "en";
}

async function setLanguage(lang) {
  let catalogue = {};
  if (lang !== "en") {
    const response = await fetch(`/i18n/${lang}.json`);
    if (response.ok) catalogue = await response.json();
  }
  state.lang = lang;
  state.catalogue = catalogue;
  document.documentElement.lang = lang;
  document.getElementById("lang").value = lang;
  for (const el of document.querySelectorAll("[data-i18n]")) {
    if (!el.dataset.i18nId) el.dataset.i18nId = el.textContent.trim();  // the English text is the id
    el.textContent = t(el.dataset.i18nId);
  }
}

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
    headers: {
      Authorization: `Bearer ${token()}`, "Content-Type": "application/json", "Accept-Language": state.lang,
      ...(options.headers || {}),
    },
  });
  if (response.status === 401) { signOut(); throw new Error(t("signed out")); }
  const body = response.status === 204 ? null : await response.json();
  if (!response.ok) throw new Error(body && (body.detail || body.title) || response.statusText);
  return body;
}

function announce(text) { document.getElementById("announcer").textContent = text; }

function age(iso) {
  const minutes = Math.max(0, Math.round((Date.now() - Date.parse(iso)) / 60000));
  if (minutes < 60) return t("{minutes} min", { minutes });
  const hours = Math.floor(minutes / 60);
  return hours < 48 ? t("{hours} h {minutes} min", { hours, minutes: minutes % 60 }) : t("{days} d", { days: Math.floor(hours / 24) });
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
      const headers = { Authorization: `Bearer ${token()}`, "Accept-Language": state.lang };
      if (state.lastEventId) headers["Last-Event-ID"] = state.lastEventId;
      const response = await fetch(`${API}/alerts/stream`, { headers, signal: controller.signal });
      if (!response.ok) throw new Error(`stream ${response.status}`);
      live.classList.add("on");
      live.textContent = t("Live");
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
    live.textContent = t("Reconnecting…");
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
  if (!known && alert.status !== "resolved") {
    announce(t("New {severity} alert: {kind} at {household}", {
      severity: label(SEVERITY_TEXT, alert.severity), kind: label(KIND_TEXT, alert.kind), household: alert.household_id,
    }));
  }
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
    const name = label(SEVERITY_TEXT, severity);
    return h("section", { class: "column", "data-severity": severity, "aria-label": t("{severity} alerts", { severity: name }) },
      h("h3", {}, `${name} (${items.length})`),
      items.length ? h("ul", { class: "cards" }, items.map(alertCard)) : h("p", { class: "empty" }, t("None open")));
  });
  const focused = document.activeElement && document.activeElement.id;
  view.replaceChildren(h("h2", {}, t("Open alerts")), h("div", { class: "board" }, columns));
  if (focused && document.getElementById(focused)) document.getElementById(focused).focus();
}

function alertCard(alert) {
  const id = alert.alert_id;
  const claimed = alert.status === "claimed";
  const actions = h("div", { class: "actions" });
  if (!claimed && state.me.role !== "device_provisioner") {
    const picker = state.me.role === "caregiver" ? null
      : h("label", {}, t("Claim for caregiver"),
          h("input", { id: `claim-for-${id}`, name: "caregiver", required: true, size: 10, autocomplete: "off" }));
    actions.append(...[picker, h("button", { type: "button", id: `claim-${id}`, onclick: () => claim(alert) }, t("Claim"))].filter(Boolean));
  }
  const outcome = h("select", { id: `outcome-${id}`, name: "outcome" }, OUTCOMES.map((o) => h("option", { value: o }, label(OUTCOME_TEXT, o))));
  actions.append(
    h("label", { for: `outcome-${id}` }, t("Outcome"), outcome),
    h("button", { type: "button", class: "secondary", id: `resolve-${id}`, onclick: () => resolve(alert) }, t("Resolve")),
  );
  return h("li", { class: "card", "data-severity": alert.severity, "data-alert-id": id, "data-status": alert.status },
    h("h4", {}, `${label(KIND_TEXT, alert.kind)} · `, h("a", { href: `#/household/${encodeURIComponent(alert.household_id)}` }, alert.household_id)),
    h("p", { class: "meta" },
      t("#{id} · open {age} · escalation step {step}", { id, age: age(alert.opened_at), step: alert.escalation_level }), " · ",
      claimed ? h("span", { class: "badge claimed" }, t("claimed by {caregiver}", { caregiver: alert.claimed_by }))
        : h("span", { class: `badge ${alert.status === "checking_in" ? "checking" : ""}` }, label(STATUS_TEXT, alert.status))),
    alert.checkin ? checkinLine(alert.checkin, alert.status) : null,
    h("p", { class: "evidence" }, alert.evidence),
    actions);
}

const CHANNEL_TEXT = { button: N_("call button"), voice: N_("phone call"), resident_sms: N_("SMS") };
const ANSWER_TEXT = { ok: N_("ok"), help: N_("help"), away: N_("away") };
const VIA_TEXT = {
  ...CHANNEL_TEXT, water: N_("water used"), press: N_("a call-button press"), smoke: N_("the smoke alarm pressed"),
  flow_stopped: N_("the flow stopped"),
};

function checkinLine(c, status) {
  // What the resident was asked and what came of it: while it waits, nobody has been paged yet.
  const by = c.channels.map((ch) => label(CHANNEL_TEXT, ch)).join(" · ");
  const at = (iso) => new Date(iso).toLocaleTimeString(state.lang, { hour: "2-digit", minute: "2-digit" });
  let text;
  if (c.status === "waiting" && status === "checking_in") {
    text = t("Asking the resident ({channels}): attempt {attempt} of {attempts}; pages the care plan at {time} if nobody answers",
      { channels: by, attempt: c.attempt, attempts: c.attempts, time: at(c.expires_at) });
  } else if (c.status === "answered") {
    text = t("Resident answered {answer} ({via}) at {time}",
      { answer: label(ANSWER_TEXT, c.answer), via: label(VIA_TEXT, c.answered_via), time: at(c.answered_at) });
  } else if (c.status === "unanswered") {
    text = t("Checked in with the resident at {time} ({channels}): no answer", { time: at(c.started_at), channels: by });
  } else {
    text = t("Check-in cancelled");
  }
  return h("p", { class: "checkin", "data-checkin-status": c.status }, text);
}

async function claim(alert) {
  const caregiver = state.me.role === "caregiver" ? state.me.subject
    : (document.getElementById(`claim-for-${alert.alert_id}`).value || "").trim();
  if (!caregiver) { announce(t("Enter the caregiver who takes this alert")); return; }
  try {
    const updated = await api(`/alerts/${alert.alert_id}/claim`, { method: "POST", body: JSON.stringify({ caregiver_id: caregiver }) });
    state.alerts.set(updated.alert_id, updated);
    announce(t("Alert {id} claimed", { id: updated.alert_id }));
    renderBoard();
  } catch (error) { announce(t("Claim failed: {error}", { error: error.message })); }
}

async function resolve(alert) {
  const outcome = document.getElementById(`outcome-${alert.alert_id}`).value;
  try {
    const updated = await api(`/alerts/${alert.alert_id}/resolve`, {
      method: "POST", body: JSON.stringify({ actor: state.me.subject, outcome }),
    });
    state.alerts.set(updated.alert_id, updated);
    announce(t("Alert {id} resolved: {outcome}", { id: updated.alert_id, outcome: label(OUTCOME_TEXT, outcome) }));
    renderBoard();
  } catch (error) { announce(t("Resolve failed: {error}", { error: error.message })); }
}

// ---- household page --------------------------------------------------------------------------------
async function renderHousehold(householdId) {
  const view = document.getElementById("view");
  view.replaceChildren(h("p", {}, t("Loading…")));
  const id = encodeURIComponent(householdId);
  const since = new Date(Date.now() - 7 * 864e5).toISOString();
  const [household, residents, plan, devices, alerts, checkins] = await Promise.all([
    api(`/households/${id}`), api(`/households/${id}/residents`), api(`/households/${id}/care-plan`),
    api(`/devices?household_id=${id}`), api(`/alerts?household_id=${id}&since=${encodeURIComponent(since)}&limit=200`),
    api(`/households/${id}/checkins`),
  ]);
  const meter = devices.items.find((device) => device.device_type === "water_meter");
  let chart = h("p", { class: "empty" }, t("No water meter in this household."));
  if (meter) {
    const [usage, band] = await Promise.all([
      api(`/devices/${encodeURIComponent(meter.device_id)}/usage?start=${encodeURIComponent(since)}`),
      api(`/devices/${encodeURIComponent(meter.device_id)}/usage/band`),
    ]);
    chart = usageChart(usage.buckets, band, alerts.items, household.timezone, Date.parse(since));
  }
  view.replaceChildren(
    h("h2", {}, t("Household {id}", { id: household.household_id })),
    h("p", { class: "meta" }, [household.name, [household.district || t("no district"), household.committee].filter(Boolean).join(" "),
      household.timezone].filter(Boolean).join(" · ")),
    h("div", { class: "grid2" },
      h("section", { class: "panel", "aria-labelledby": "res-title" }, h("h3", { id: "res-title" }, t("Residents")),
        h("ul", {}, residents.map((r) => h("li", {}, r.birth_year ? t("{name} (born {year})", { name: r.name, year: r.birth_year }) : r.name,
          r.medical_notes_visible && r.medical_notes ? h("div", { class: "hint" }, t("Medical notes: {notes}", { notes: r.medical_notes })) : null)))),
      h("section", { class: "panel", "aria-labelledby": "plan-title" }, h("h3", { id: "plan-title" }, t("Care plan")),
        plan.length ? h("ol", {}, plan.map((c) => h("li", {}, t("{caregiver} · {role} · tier {tier}", { caregiver: c.caregiver_id, role: label(ROLE_TEXT, c.role), tier: c.tier }))))
          : h("p", { class: "empty" }, t("No contacts")))),
    h("section", { class: "panel chart", "aria-labelledby": "chart-title" },
      h("h3", { id: "chart-title" }, t("Water use per hour, last 7 days")), h("div", { class: "chart-scroll" }, chart),
      h("p", { class: "legend" }, h("span", { class: "l-use" }, t("litres per hour")),
        h("span", { class: "l-band" }, t("normal band (10th–90th percentile, last 28 days)")), h("span", { class: "l-alert" }, t("alert")))),
    h("section", { class: "panel", "aria-labelledby": "checkin-title" }, h("h3", { id: "checkin-title" }, t("Check-ins with the resident")),
      checkins.length ? checkinTable(checkins, household.timezone) : h("p", { class: "empty" }, t("No check-ins"))),
    h("section", { class: "panel", "aria-labelledby": "dev-title" }, h("h3", { id: "dev-title" }, t("Devices")), deviceTable(devices.items)),
  );
  // On a phone the week scrolls sideways: start at its latest day.
  const scroller = view.querySelector(".chart-scroll");
  if (scroller) scroller.scrollLeft = scroller.scrollWidth;
}

function checkinTable(checkins, timeZone) {
  // In the household's time zone, like the chart and the evidence (not the reader's).
  const when = (iso) => new Date(iso).toLocaleString(state.lang, { month: "numeric", day: "numeric", hour: "2-digit", minute: "2-digit", timeZone });
  const result = (c) => c.status === "answered" ? `${label(ANSWER_TEXT, c.answer)} (${label(VIA_TEXT, c.answered_via)})`
    : c.status === "unanswered" ? t("no answer: care plan paged") : c.status === "waiting" ? t("waiting") : t("cancelled");
  return h("table", { id: "checkins" }, h("caption", { class: "visually-hidden" }, t("Check-ins with the resident, newest first")),
    h("thead", {}, h("tr", {}, [t("Asked"), t("Why"), t("How"), t("Attempts"), t("Result")].map((text) => h("th", { scope: "col" }, text)))),
    h("tbody", {}, checkins.map((c) => h("tr", { "data-checkin-status": c.status },
      h("td", {}, when(c.started_at)), h("td", {}, label(KIND_TEXT, c.kind)),
      h("td", {}, c.channels.map((ch) => label(CHANNEL_TEXT, ch)).join(", ")),
      h("td", {}, t("{attempt} of {attempts}", { attempt: c.attempt, attempts: c.attempts })),
      h("td", {}, result(c))))));
}

function deviceTable(devices) {
  const heads = [N_("Device"), N_("Type"), N_("Online"), N_("Battery"), N_("Last seen")];
  return h("table", {}, h("caption", { class: "visually-hidden" }, t("Devices and their health")),
    h("thead", {}, h("tr", {}, heads.map((head) => h("th", { scope: "col" }, t(head))))),
    h("tbody", {}, devices.map((d) => h("tr", {}, h("td", {}, d.device_id), h("td", {}, label(DEVICE_TEXT, d.device_type)),
      h("td", {}, d.online === null ? t("unknown") : d.online ? t("yes") : t("NO")), h("td", {}, d.battery_pct === null ? "–" : `${d.battery_pct} %`),
      h("td", {}, d.last_seen_at ? t("{age} ago", { age: age(d.last_seen_at) }) : t("never"))))));
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
  const svg = h("svg:svg", { viewBox: `0 0 ${W} ${H}`, role: "img", "aria-label": t("Hourly water use over the last 7 days with the normal band; {hours} hours with data, {alerts} alerts", { hours: buckets.length, alerts: alerts.length }) });
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
      height: Math.max(0, y(0) - y(b.consumption_l)).toFixed(1) }, h("svg:title", {}, t("{when}: {litres} L", { when: new Date(ms).toLocaleString(state.lang, { timeZone }), litres: b.consumption_l.toLocaleString(state.lang, { maximumFractionDigits: 1, minimumFractionDigits: 1 }) }))));
  }
  const axis = h("svg:g", { class: "axis" }, h("svg:line", { x1: L, x2: W - R, y1: y(0), y2: y(0) }));
  for (const litres of [0, top / 2, top]) axis.append(h("svg:text", { x: 2, y: y(litres) + 4 }, t("{litres} L", { litres: Math.round(litres) })));
  for (let day = 0; day <= 7; day++) {
    const ms = startMs + day * 24 * hourMs;
    // The first and last labels are anchored inside the chart, so neither is cut at its edge.
    const anchor = day === 0 ? "start" : day === 7 ? "end" : "middle";
    axis.append(h("svg:text", { x: x(ms), y: H - 8, "text-anchor": anchor }, new Date(ms).toLocaleDateString(state.lang, { month: "numeric", day: "numeric", timeZone })));
  }
  svg.append(axis);
  for (const alert of alerts) {
    const ms = Date.parse(alert.started_at);
    if (ms < startMs) continue;
    svg.append(h("svg:g", {}, h("svg:title", {}, `${label(KIND_TEXT, alert.kind)} (${label(SEVERITY_TEXT, alert.severity)}) #${alert.alert_id}`),
      h("svg:line", { class: "marker", x1: x(ms), x2: x(ms), y1: T, y2: y(0) }),
      h("svg:polygon", { class: "marker-head", points: `${x(ms) - 5},${T} ${x(ms) + 5},${T} ${x(ms)},${T + 8}` })));
  }
  return svg;
}

// ---- fleet page ------------------------------------------------------------------------------------
async function renderFleet() {
  const view = document.getElementById("view");
  const fleet = await api("/fleet/health");
  const tiles = [[N_("Devices"), fleet.devices_total], [N_("Offline"), fleet.offline], [N_("Low battery"), fleet.low_battery],
    [N_("Silent meters"), fleet.silent_meters], [N_("Sequence gaps"), fleet.with_seq_gaps]];
  const heads = [N_("Device"), N_("Household"), N_("Problems"), N_("Battery"), N_("Last seen"), N_("Missing messages (24 h)")];
  view.replaceChildren(
    h("h2", {}, t("Fleet health")),
    h("div", { class: "tiles" }, tiles.map(([name, value]) => h("div", { class: "tile" }, h("strong", {}, value), t(name)))),
    fleet.problem_devices.length ? h("table", {}, h("caption", { class: "visually-hidden" }, t("Devices with problems")),
      h("thead", {}, h("tr", {}, heads.map((head) => h("th", { scope: "col" }, t(head))))),
      h("tbody", {}, fleet.problem_devices.map((d) => h("tr", {}, h("td", {}, d.device_id),
        h("td", {}, h("a", { href: `#/household/${encodeURIComponent(d.household_id)}` }, d.household_id)),
        h("td", {}, d.problems.map((p) => label(PROBLEM_TEXT, p)).join(t(", "))), h("td", {}, d.battery_pct ?? "–"),
        h("td", {}, d.last_seen_at ? t("{age} ago", { age: age(d.last_seen_at) }) : t("never")), h("td", {}, d.seq_gaps_24h))))) : h("p", { class: "empty" }, t("No problems.")));
}

// ---- monthly report (staff) ------------------------------------------------------------------------
// The server renders the report (the same HTML as `carewatch report`); the page shows it in a sandboxed
// srcdoc frame (no scripts, an opaque origin) and downloads the PDF and CSV with the bearer token.
const STAFF = ["admin", "operator"];

function lastMonth() {
  const now = new Date();
  const first = new Date(now.getFullYear(), now.getMonth() - 1, 1);
  return `${first.getFullYear()}-${String(first.getMonth() + 1).padStart(2, "0")}`;
}

function reportQuery(form, format) {
  const query = new URLSearchParams({ month: form.month.value, format, lang: state.lang });
  if (form.district && form.district.value.trim()) query.set("district", form.district.value.trim());
  return `/reports/monthly?${query}`;
}

async function fetchReport(path) {
  const response = await fetch(API + path, { headers: { Authorization: `Bearer ${token()}`, "Accept-Language": state.lang } });
  if (response.status === 401) { signOut(); throw new Error(t("signed out")); }
  if (!response.ok) {
    const body = await response.json().catch(() => null);
    throw new Error(body && (body.detail || body.title) || response.statusText);
  }
  return response;
}

async function download(form, format) {
  const response = await fetchReport(reportQuery(form, format));
  const url = URL.createObjectURL(await response.blob());
  const link = h("a", { href: url, download: `carewatch-report-${form.month.value}.${format}` });
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10000);
}

async function renderReport() {
  const view = document.getElementById("view");
  const status = h("p", { class: "hint", role: "status" });
  const frame = h("iframe", { class: "report", sandbox: "", title: t("Monthly report") });
  const district = state.me.role === "admin"
    ? [h("label", { for: "report-district" }, t("District (empty: all)")), h("input", { id: "report-district", name: "district", autocomplete: "off" })]
    : [];
  const form = h("form", { class: "report-form" },
    h("label", { for: "report-month" }, t("Month")),
    h("input", { id: "report-month", name: "month", type: "month", required: "", value: lastMonth() }),
    ...district,
    h("button", { type: "submit" }, t("Show")),
    h("button", { type: "button", "data-format": "pdf" }, t("Download PDF")),
    h("button", { type: "button", "data-format": "csv" }, t("Download CSV")));
  const show = async () => {
    status.textContent = t("Loading…");
    try {
      frame.srcdoc = await (await fetchReport(reportQuery(form, "html"))).text();
      status.textContent = "";
    } catch (error) { status.textContent = t("Could not load: {error}", { error: error.message }); }
  };
  form.addEventListener("submit", (event) => { event.preventDefault(); show(); });
  form.querySelectorAll("button[data-format]").forEach((button) => button.addEventListener("click", async () => {
    try { await download(form, button.dataset.format); } catch (error) { status.textContent = t("Could not load: {error}", { error: error.message }); }
  }));
  view.replaceChildren(h("h2", {}, t("Monthly report")), form, status, frame);
  await show();
}

// ---- routing ---------------------------------------------------------------------------------------
async function render() {
  const signedIn = Boolean(state.me);
  document.getElementById("login").hidden = signedIn;
  document.getElementById("nav").hidden = !signedIn;
  document.getElementById("logout").hidden = !signedIn;
  document.getElementById("nav-report").hidden = !(signedIn && STAFF.includes(state.me.role));
  document.getElementById("whoami").textContent = signedIn ? `${label(ROLE_TEXT, state.me.role)} ${state.me.subject}${state.me.district ? ` · ${state.me.district}` : ""}` : "";
  const view = document.getElementById("view");
  if (!signedIn) { view.replaceChildren(); return; }
  clearInterval(state.ageTimer);
  const route = location.hash.replace(/^#\/?/, "");
  try {
    if (route.startsWith("household/")) await renderHousehold(decodeURIComponent(route.slice("household/".length)));
    else if (route === "fleet") await renderFleet();
    else if (route === "report") await renderReport();
    else {
      await loadBoard();
      state.ageTimer = setInterval(renderBoard, 30000);
    }
  } catch (error) {
    view.replaceChildren(h("p", { class: "error", role: "alert" }, t("Could not load: {error}", { error: error.message })));
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
  } catch (e) { error.textContent = t("That token was not accepted."); }
});
document.getElementById("logout").addEventListener("click", signOut);
document.getElementById("goto").addEventListener("submit", (event) => {
  event.preventDefault();
  location.hash = `#/household/${encodeURIComponent(document.getElementById("goto-id").value.trim())}`;
});
window.addEventListener("hashchange", render);
document.getElementById("lang").addEventListener("change", async (event) => {
  localStorage.setItem("carewatch.lang", event.target.value);
  await setLanguage(event.target.value);
  stopStream();  // the stream's evidence comes in the language it was opened with
  await render();
});

(async () => {
  await setLanguage(await chosenLanguage());
  if (token()) { try { state.me = await api("/whoami"); } catch { state.me = null; } }
  await render();
})();
