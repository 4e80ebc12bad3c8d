// The web admin: logs in with an admin's password, then calls the admin API of the
// server that served it. Data is only ever written with textContent (never as HTML).
"use strict";

const ADMIN = "/_synapse/admin";
const STATS = "/_ranvier/admin/api/v1/stats";
const PAGE_SIZE = 20;
const POLL_MS = 2000;
const POINTS = 90;

const state = {
  token: sessionStorage.getItem("ranvier-admin-token"),
  userId: sessionStorage.getItem("ranvier-admin-user"),
  charts: {},
  series: { time: [], requests: [], events: [], sync: [], p50: [], p95: [], p99: [], memory: [] },
  previous: null,
  poller: null,
  userFrom: 0,
  roomFrom: 0,
  reportFrom: 0,
};
window.ranvierAdmin = state;  // for tests and for the curious

const $ = (selector) => document.querySelector(selector);

function say(text, isError = false) {
  const message = $("#message");
  message.textContent = text;
  message.className = isError ? "error" : "";
}

async function api(method, path, body) {
  const options = { method, headers: { Authorization: `Bearer ${state.token}` } };
  if (body !== undefined) {
    options.headers["Content-Type"] = "application/json";
    options.body = JSON.stringify(body);
  }
  const response = await fetch(path, options);
  const data = await response.json().catch(() => ({}));
  if (response.status === 401) {
    logout("Your session has ended; log in again.");
  }
  if (!response.ok) {
    throw new Error(`${data.errcode || response.status}: ${data.error || response.statusText}`);
  }
  return data;
}

function enc(text) {
  return encodeURIComponent(text);
}

function when(ms) {
  return ms ? new Date(ms).toISOString().replace("T", " ").slice(0, 16) : "";
}

function bytes(count) {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let value = count, unit = 0;
  while (value >= 1024 && unit < units.length - 1) { value /= 1024; unit += 1; }
  return `${value.toFixed(unit ? 1 : 0)} ${units[unit]}`;
}

function cell(row, text) {
  const td = document.createElement("td");
  td.textContent = text === null || text === undefined ? "" : String(text);
  row.appendChild(td);
  return td;
}

function button(parent, label, action, danger = false) {
  const b = document.createElement("button");
  b.type = "button";
  b.textContent = label;
  if (danger) b.className = "danger";
  b.addEventListener("click", async () => {
    try { await action(); } catch (error) { say(error.message, true); }
  });
  parent.appendChild(b);
  return b;
}

function pager(element, from, total, go) {
  element.replaceChildren();
  const info = document.createElement("span");
  info.textContent = total ? `${from + 1}–${Math.min(from + PAGE_SIZE, total)} of ${total}` : "none";
  if (from > 0) button(element, "‹ previous", () => go(Math.max(0, from - PAGE_SIZE)));
  element.appendChild(info);
  if (from + PAGE_SIZE < total) button(element, "next ›", () => go(from + PAGE_SIZE));
}

// -- logging in ------------------------------------------------------------------------

async function login(event) {
  event.preventDefault();
  say("Logging in…");
  const response = await fetch("/_matrix/client/v3/login", {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({
      type: "m.login.password",
      identifier: { type: "m.id.user", user: $("#login-user").value.trim() },
      password: $("#login-password").value,
      initial_device_display_name: "ranvier web admin",
    }),
  });
  const data = await response.json().catch(() => ({}));
  if (!response.ok) {
    say(data.error || "Login failed", true);
    return;
  }
  state.token = data.access_token;
  state.userId = data.user_id;
  try {
    await api("GET", `${ADMIN}/v1/server_version`);
  } catch (error) {
    await fetch("/_matrix/client/v3/logout", { method: "POST", headers: { Authorization: `Bearer ${data.access_token}` } });
    state.token = null;
    say("This account is not a server admin.", true);
    return;
  }
  sessionStorage.setItem("ranvier-admin-token", state.token);
  sessionStorage.setItem("ranvier-admin-user", state.userId);
  $("#login-password").value = "";
  say("");
  show();
}

function logout(text = "") {
  if (state.token) {
    fetch("/_matrix/client/v3/logout", { method: "POST", headers: { Authorization: `Bearer ${state.token}` } });
  }
  state.token = null;
  sessionStorage.removeItem("ranvier-admin-token");
  sessionStorage.removeItem("ranvier-admin-user");
  clearInterval(state.poller);
  state.poller = null;
  say(text, Boolean(text));
  show();
}

// -- pages -----------------------------------------------------------------------------

const PAGES = { dashboard: showDashboard, users: loadUsers, rooms: loadRooms, reports: loadReports, tokens: loadTokens };

function show() {
  const loggedIn = Boolean(state.token);
  $("#login").hidden = loggedIn;
  $("#nav").hidden = !loggedIn;
  $("#whoami").textContent = loggedIn ? state.userId : "";
  const wanted = location.hash.slice(1) in PAGES ? location.hash.slice(1) : "dashboard";
  for (const page of document.querySelectorAll(".page")) {
    page.hidden = !loggedIn || page.id !== wanted;
  }
  if (loggedIn) {
    PAGES[wanted]().catch((error) => say(error.message, true));
  }
}

// -- dashboard ---------------------------------------------------------------------------

function makeChart(id, series) {
  const element = document.getElementById(id);
  const options = {
    width: Math.max(320, element.clientWidth || 360),
    height: 180,
    scales: { x: { time: true } },
    series: [{}, ...series.map(([label, stroke]) => ({ label, stroke, width: 2 }))],
    legend: { live: false },
  };
  return new uPlot(options, [[], ...series.map(() => [])], element);
}

function ensureCharts() {
  if (state.charts.requests) return;
  state.charts.requests = makeChart("chart-requests", [["requests/s", "#2f6fed"]]);
  state.charts.events = makeChart("chart-events", [["events/s", "#12a150"]]);
  state.charts.sync = makeChart("chart-sync", [["waiting", "#b35c00"]]);
  state.charts.latency = makeChart("chart-latency", [["p50", "#2f6fed"], ["p95", "#b35c00"], ["p99", "#c0362c"]]);
  state.charts.memory = makeChart("chart-memory", [["MiB", "#6941c6"]]);
}

// A latency percentile from the growth of the cumulative histogram buckets between two
// polls, interpolated linearly inside the bucket it falls in.
function percentile(before, after, fraction) {
  const bounds = Object.keys(after).filter((b) => b !== "+Inf").sort((a, b) => Number(a) - Number(b));
  const grown = (key) => (after[key] || 0) - ((before && before[key]) || 0);
  const total = grown("+Inf");
  if (total <= 0) return null;
  const wanted = fraction * total;
  let lowerBound = 0, lowerCount = 0;
  for (const key of bounds) {
    const count = grown(key);
    if (count >= wanted) {
      const share = count > lowerCount ? (wanted - lowerCount) / (count - lowerCount) : 1;
      return (lowerBound + share * (Number(key) - lowerBound)) * 1000;
    }
    lowerBound = Number(key);
    lowerCount = count;
  }
  return lowerBound * 1000;
}

function push(name, value) {
  const list = state.series[name];
  list.push(value);
  if (list.length > POINTS) list.shift();
}

async function poll() {
  const stats = await api("GET", STATS);
  const counts = stats.counts;
  $("#count-users").textContent = counts.users;
  $("#count-rooms").textContent = counts.rooms;
  $("#count-events").textContent = counts.events;
  $("#count-media").textContent = bytes(counts.media_bytes);
  const now = stats.metrics;
  const before = state.previous;
  state.previous = now;
  const jobs = $("#jobs tbody");
  jobs.replaceChildren();
  for (const job of stats.jobs) {
    const row = document.createElement("tr");
    cell(row, job.name); cell(row, `${job.interval_s} s`); cell(row, job.runs); cell(row, job.failures);
    cell(row, job.running ? "running" : when(job.last_started_ts));
    jobs.appendChild(row);
  }
  if (!before) return;
  const seconds = Math.max(0.001, now.time - before.time);
  push("time", now.time);
  push("requests", (now.requests - before.requests) / seconds);
  push("events", (now.events_persisted - before.events_persisted) / seconds);
  push("sync", now.sync_waiters);
  push("p50", percentile(before.latency_buckets, now.latency_buckets, 0.5));
  push("p95", percentile(before.latency_buckets, now.latency_buckets, 0.95));
  push("p99", percentile(before.latency_buckets, now.latency_buckets, 0.99));
  push("memory", now.memory_bytes / 1048576);
  const s = state.series;
  state.charts.requests.setData([s.time, s.requests]);
  state.charts.events.setData([s.time, s.events]);
  state.charts.sync.setData([s.time, s.sync]);
  state.charts.latency.setData([s.time, s.p50, s.p95, s.p99]);
  state.charts.memory.setData([s.time, s.memory]);
}

async function showDashboard() {
  ensureCharts();
  if (!state.poller) {
    const tick = () => poll().catch((error) => say(error.message, true));
    state.poller = setInterval(tick, POLL_MS);
    await tick();
  }
}

// -- users -------------------------------------------------------------------------------

async function loadUsers(from = state.userFrom) {
  state.userFrom = from;
  const params = new URLSearchParams({ from, limit: PAGE_SIZE, deactivated: $("#user-deactivated").checked,
                                       guests: $("#user-guests").checked });
  const query = $("#user-query").value.trim();
  if (query) params.set("name", query);
  const data = await api("GET", `${ADMIN}/v2/users?${params}`);
  const body = $("#user-table tbody");
  body.replaceChildren();
  for (const user of data.users) {
    const row = document.createElement("tr");
    row.dataset.user = user.name;
    cell(row, user.name);
    cell(row, user.displayname);
    cell(row, user.admin ? "admin" : "");
    cell(row, [user.deactivated && "deactivated", user.shadow_banned && "shadow-banned", user.is_guest && "guest"]
      .filter(Boolean).join(", "));
    cell(row, when(user.creation_ts));
    const actions = cell(row, "");
    actions.className = "actions";
    if (!user.deactivated) {
      button(actions, user.admin ? "Revoke admin" : "Make admin", async () => {
        await api("PUT", `${ADMIN}/v1/users/${enc(user.name)}/admin`, { admin: !user.admin });
        await loadUsers();
      });
      button(actions, user.shadow_banned ? "Lift shadow-ban" : "Shadow-ban", async () => {
        await api(user.shadow_banned ? "DELETE" : "POST", `${ADMIN}/v1/users/${enc(user.name)}/shadow_ban`);
        await loadUsers();
      });
      button(actions, "Reset password", async () => {
        const password = prompt(`New password for ${user.name}`);
        if (!password) return;
        await api("POST", `${ADMIN}/v1/reset_password/${enc(user.name)}`, { new_password: password });
        say(`Password of ${user.name} changed; their devices are logged out.`);
      });
      button(actions, "Deactivate", async () => {
        if (!confirm(`Deactivate ${user.name} for good?`)) return;
        await api("POST", `${ADMIN}/v1/deactivate/${enc(user.name)}`, { erase: false });
        say(`${user.name} is deactivated.`);
        await loadUsers();
      }, true);
    }
    body.appendChild(row);
  }
  pager($("#user-pager"), from, data.total, loadUsers);
}

async function createUser(event) {
  event.preventDefault();
  const server = state.userId.slice(state.userId.indexOf(":") + 1);
  const userId = `@${$("#new-user-name").value.trim().toLowerCase()}:${server}`;
  const body = { password: $("#new-user-password").value, admin: $("#new-user-admin").checked };
  const displayname = $("#new-user-displayname").value.trim();
  if (displayname) body.displayname = displayname;
  try {
    const existing = await api("GET", `${ADMIN}/v2/users/${enc(userId)}`).catch(() => null);
    if (existing) throw new Error(`${userId} exists already`);
    await api("PUT", `${ADMIN}/v2/users/${enc(userId)}`, body);
    say(`Created ${userId}.`);
    event.target.reset();
    await loadUsers(0);
  } catch (error) {
    say(error.message, true);
  }
}

// -- rooms -------------------------------------------------------------------------------

async function loadRooms(from = state.roomFrom) {
  state.roomFrom = from;
  const params = new URLSearchParams({ from, limit: PAGE_SIZE, order_by: $("#room-order").value });
  const query = $("#room-query").value.trim();
  if (query) params.set("search_term", query);
  const data = await api("GET", `${ADMIN}/v1/rooms?${params}`);
  const body = $("#room-table tbody");
  body.replaceChildren();
  for (const room of data.rooms) {
    const row = document.createElement("tr");
    row.dataset.room = room.room_id;
    cell(row, room.name ? `${room.name} (${room.room_id})` : room.room_id);
    cell(row, room.canonical_alias);
    cell(row, room.joined_members);
    cell(row, room.version);
    cell(row, room.public ? "public" : "");
    const actions = cell(row, "");
    actions.className = "actions";
    const blocked = (await api("GET", `${ADMIN}/v1/rooms/${enc(room.room_id)}/block`)).block;
    button(actions, blocked ? "Unblock" : "Block", async () => {
      await api("PUT", `${ADMIN}/v1/rooms/${enc(room.room_id)}/block`, { block: !blocked });
      await loadRooms();
    });
    button(actions, "Delete", async () => {
      if (!confirm(`Remove everyone from ${room.room_id}, block it and delete it for good?`)) return;
      const { delete_id: deleteId } = await api("DELETE", `${ADMIN}/v2/rooms/${enc(room.room_id)}`,
                                                { block: true, purge: true });
      say(`Deleting ${room.room_id} (task ${deleteId})…`);
      setTimeout(() => loadRooms().catch((error) => say(error.message, true)), 1000);
    }, true);
    body.appendChild(row);
  }
  pager($("#room-pager"), from, data.total_rooms, loadRooms);
}

// -- reports -----------------------------------------------------------------------------

async function loadReports(from = state.reportFrom) {
  state.reportFrom = from;
  const data = await api("GET", `${ADMIN}/v1/event_reports?from=${from}&limit=${PAGE_SIZE}`);
  const body = $("#report-table tbody");
  body.replaceChildren();
  for (const report of data.event_reports) {
    const row = document.createElement("tr");
    cell(row, when(report.received_ts));
    cell(row, report.name || report.room_id);
    cell(row, report.sender);
    cell(row, report.user_id);
    cell(row, report.reason);
    const actions = cell(row, "");
    actions.className = "actions";
    button(actions, "Dismiss", async () => {
      await api("DELETE", `${ADMIN}/v1/event_reports/${enc(report.id)}`);
      await loadReports();
    });
    button(actions, "Shadow-ban sender", async () => {
      await api("POST", `${ADMIN}/v1/users/${enc(report.sender)}/shadow_ban`);
      say(`${report.sender} is shadow-banned.`);
    }, true);
    body.appendChild(row);
  }
  pager($("#report-pager"), from, data.total, loadReports);
  const rooms = await api("GET", `${ADMIN}/v1/room_reports?limit=${PAGE_SIZE}`);
  const roomBody = $("#room-report-table tbody");
  roomBody.replaceChildren();
  for (const report of rooms.room_reports) {
    const row = document.createElement("tr");
    cell(row, when(report.received_ts));
    cell(row, report.name || report.room_id);
    cell(row, report.user_id);
    cell(row, report.reason);
    roomBody.appendChild(row);
  }
}

// -- registration tokens -----------------------------------------------------------------

async function loadTokens() {
  const data = await api("GET", `${ADMIN}/v1/registration_tokens`);
  const body = $("#token-table tbody");
  body.replaceChildren();
  for (const token of data.registration_tokens) {
    const row = document.createElement("tr");
    cell(row, token.token);
    cell(row, token.completed);
    cell(row, token.uses_allowed === null ? "unlimited" : token.uses_allowed);
    cell(row, token.expiry_time === null ? "never" : when(token.expiry_time));
    const actions = cell(row, "");
    actions.className = "actions";
    button(actions, "Delete", async () => {
      await api("DELETE", `${ADMIN}/v1/registration_tokens/${enc(token.token)}`);
      await loadTokens();
    }, true);
    body.appendChild(row);
  }
}

async function createToken(event) {
  event.preventDefault();
  const uses = $("#token-uses").value, days = $("#token-days").value;
  const body = { uses_allowed: uses ? Number(uses) : null,
                 expiry_time: days ? Date.now() + Number(days) * 86400000 : null };
  try {
    const token = await api("POST", `${ADMIN}/v1/registration_tokens/new`, body);
    say(`New token: ${token.token}`);
    event.target.reset();
    await loadTokens();
  } catch (error) {
    say(error.message, true);
  }
}

// -- wiring ------------------------------------------------------------------------------

document.addEventListener("DOMContentLoaded", () => {
  $("#login-form").addEventListener("submit", (event) => login(event).catch((error) => say(error.message, true)));
  $("#logout").addEventListener("click", () => logout());
  $("#user-search").addEventListener("submit", (event) => { event.preventDefault(); loadUsers(0).catch((e) => say(e.message, true)); });
  $("#user-create").addEventListener("submit", createUser);
  $("#room-search").addEventListener("submit", (event) => { event.preventDefault(); loadRooms(0).catch((e) => say(e.message, true)); });
  $("#token-create").addEventListener("submit", createToken);
  window.addEventListener("hashchange", show);
  show();
});
