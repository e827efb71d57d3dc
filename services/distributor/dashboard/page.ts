/**
 * The dashboard page: one self-contained document (inline style and script, no external
 * assets, no framework, no build step). It reads the state from /dashboard/api/state when
 * the change feed says something changed (polling when the feed is unavailable) and
 * renders it with textContent only: client ids and errors come from clients and sources
 * and are never parsed as HTML.
 */

export const DASHBOARD_STYLE = String.raw`
:root {
  --bg: #f4f5f7; --panel: #fff; --ink: #1c2230; --muted: #6b7280; --faint: #9ca3af; --line: #e6e8ec;
  --green: #16a34a; --green-bg: #dcfce7; --amber: #d97706; --amber-bg: #fef3c7; --red: #dc2626; --red-bg: #fee2e2;
  --blue: #2563eb; --blue-bg: #dbeafe; --violet: #7c3aed; --violet-bg: #ede9fe; --grey-bg: #f1f2f4;
}
* { box-sizing: border-box; }
body { margin: 0; background: var(--bg); color: var(--ink); font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif; }
.mono { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, "Liberation Mono", monospace; font-size: 12.5px; }
.muted { color: var(--muted); }
header { display: flex; align-items: center; gap: 18px; padding: 12px 28px; background: #141a26; color: #f3f4f6; }
.brand { font-size: 16px; font-weight: 650; letter-spacing: .2px; display: flex; align-items: center; gap: 10px; }
.brand .mark { width: 18px; height: 18px; border-radius: 5px; background: linear-gradient(135deg, #60a5fa, #7c3aed); }
.brand .role { font-weight: 400; color: #9ca3af; }
.conn { display: flex; align-items: center; gap: 7px; font-size: 12.5px; color: #d1d5db; margin-left: auto; }
.conn .dot { width: 8px; height: 8px; border-radius: 50%; background: #6b7280; }
.conn.live .dot { background: #22c55e; box-shadow: 0 0 0 3px rgba(34, 197, 94, .25); }
.conn.polling .dot { background: #f59e0b; }
.conn.offline .dot { background: #ef4444; }
#token-form { display: flex; gap: 6px; }
#token-form input { width: 170px; padding: 5px 8px; border-radius: 6px; border: 1px solid #374151; background: #1f2937; color: #f3f4f6; font-size: 12.5px; }
#token-form input::placeholder { color: #9ca3af; }
#token-form button { padding: 5px 10px; border-radius: 6px; border: 1px solid #374151; background: #273244; color: #f3f4f6; font-size: 12.5px; cursor: pointer; }
main { max-width: 1320px; margin: 0 auto; padding: 18px 28px 32px; }
.banner { margin-bottom: 14px; padding: 10px 14px; border-radius: 8px; background: var(--red-bg); color: #991b1b; border: 1px solid #fecaca; }
.stats { display: grid; grid-template-columns: repeat(5, 1fr); gap: 12px; margin-bottom: 16px; }
.stat { background: var(--panel); border: 1px solid var(--line); border-radius: 10px; padding: 12px 16px; }
.stat .label { font-size: 11.5px; text-transform: uppercase; letter-spacing: .06em; color: var(--muted); }
.stat .value { font-size: 24px; font-weight: 650; margin-top: 2px; font-variant-numeric: tabular-nums; }
.stat .sub { font-size: 12.5px; color: var(--muted); white-space: nowrap; overflow: hidden; text-overflow: ellipsis; }
.stat .sub .bad { color: var(--red); font-weight: 600; }
.stat .sub .warn { color: var(--amber); font-weight: 600; }
.panel { background: var(--panel); border: 1px solid var(--line); border-radius: 10px; margin-bottom: 16px; overflow: hidden; }
.panel h2 { margin: 0; padding: 11px 16px; font-size: 14px; font-weight: 650; border-bottom: 1px solid var(--line); display: flex; gap: 8px; align-items: baseline; }
.panel h2 .count { color: var(--muted); font-weight: 400; font-size: 13px; }
table { width: 100%; border-collapse: collapse; table-layout: auto; }
th { text-align: left; font-size: 11.5px; font-weight: 600; text-transform: uppercase; letter-spacing: .05em; color: var(--muted); padding: 8px 12px; background: #fafbfc; border-bottom: 1px solid var(--line); white-space: nowrap; }
td { padding: 8px 12px; border-bottom: 1px solid var(--line); vertical-align: middle; }
tbody tr:last-child td { border-bottom: 0; }
.num { text-align: right; font-variant-numeric: tabular-nums; }
.empty { padding: 18px 16px; color: var(--muted); }
.status-dot { display: inline-block; width: 10px; height: 10px; border-radius: 50%; background: var(--faint); }
.status-dot.ok { background: var(--green); }
.status-dot.loading { background: var(--amber); }
.status-dot.unhealthy { background: var(--red); }
.client-id { font-weight: 600; }
.sub-line { font-size: 12px; color: var(--muted); }
.chip { display: inline-block; padding: 1px 7px; margin: 1px 4px 1px 0; border-radius: 999px; background: var(--grey-bg); color: #374151; font-size: 12px; }
.lag { font-weight: 600; }
.lag.zero { color: var(--faint); font-weight: 400; }
.lag.behind { color: #92400e; background: var(--amber-bg); border-radius: 6px; padding: 1px 7px; }
.lag.far { color: #991b1b; background: var(--red-bg); border-radius: 6px; padding: 1px 7px; }
.note { max-width: 340px; white-space: nowrap; overflow: hidden; text-overflow: ellipsis; font-size: 12.5px; }
.note.bad { color: var(--red); }
.note.warn { color: #92400e; }
.note.good { color: var(--green); }
.badge { display: inline-flex; align-items: center; gap: 4px; padding: 1px 8px; margin-right: 4px; border-radius: 999px; font-size: 12px; font-weight: 600; white-space: nowrap; }
.badge.applied { background: var(--green-bg); color: #166534; }
.badge.failed { background: var(--red-bg); color: #991b1b; }
.badge.pending { background: var(--amber-bg); color: #92400e; }
.badge.none { background: var(--grey-bg); color: var(--muted); font-weight: 500; }
.kind { display: inline-block; padding: 1px 8px; border-radius: 6px; font-size: 12px; font-weight: 600; }
.kind.data { background: var(--blue-bg); color: #1e40af; }
.kind.policy { background: var(--violet-bg); color: #5b21b6; }
tr.update { cursor: pointer; }
tr.update:hover td { background: #fafbfd; }
tr.update td:first-child::before { content: "\25B8"; display: inline-block; width: 14px; color: var(--faint); transition: transform .1s; }
tr.update.open td:first-child::before { transform: rotate(90deg); }
tr.detail td { background: #fafbfc; padding: 6px 12px 10px 40px; }
tr.detail table td { border: 0; padding: 3px 10px 3px 0; background: transparent; font-size: 12.5px; }
.error-text { color: var(--red); white-space: pre-wrap; word-break: break-word; }
.bar { display: inline-block; width: 80px; height: 6px; border-radius: 3px; background: var(--grey-bg); overflow: hidden; vertical-align: middle; margin-right: 8px; }
.bar span { display: block; height: 100%; float: left; }
.bar .applied { background: var(--green); } .bar .failed { background: var(--red); } .bar .pending { background: #f59e0b; }
a.trace { color: var(--blue); text-decoration: none; font-size: 12.5px; }
a.trace:hover { text-decoration: underline; }
footer { color: var(--faint); font-size: 12px; text-align: right; }
`;

export const DASHBOARD_SCRIPT = String.raw`
(function () {
  "use strict";
  var TOKEN_KEY = "opal-mesh-dashboard-token";
  var api = location.pathname.replace(/\/+$/, "") + "/api/";
  var $ = function (id) { return document.getElementById(id); };

  // A token given as ?token= is kept for this tab and taken out of the address bar.
  var params = new URLSearchParams(location.search);
  var token = params.get("token") || sessionStorage.getItem(TOKEN_KEY) || "";
  if (params.has("token")) {
    sessionStorage.setItem(TOKEN_KEY, token);
    params.delete("token");
    var rest = params.toString();
    history.replaceState(null, "", location.pathname + (rest ? "?" + rest : "") + location.hash);
  }
  $("token").value = token;
  $("token-form").addEventListener("submit", function (event) {
    event.preventDefault();
    token = $("token").value.trim();
    if (token) sessionStorage.setItem(TOKEN_KEY, token); else sessionStorage.removeItem(TOKEN_KEY);
    refused = false;
    restartStream();
    refresh();
  });

  function headers() { return token ? { authorization: "Bearer " + token } : {}; }

  function el(tag, className, text) {
    var node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  function ago(iso) {
    var seconds = Math.max(0, Math.round((Date.now() - Date.parse(iso)) / 1000));
    if (seconds < 5) return "just now";
    if (seconds < 60) return seconds + " s ago";
    if (seconds < 3600) return Math.floor(seconds / 60) + " min ago";
    if (seconds < 86400) return Math.floor(seconds / 3600) + " h ago";
    return Math.floor(seconds / 86400) + " d ago";
  }

  function duration(seconds) {
    if (seconds < 60) return seconds + " s";
    if (seconds < 3600) return Math.floor(seconds / 60) + " min";
    if (seconds < 86400) return Math.floor(seconds / 3600) + " h " + Math.floor((seconds % 3600) / 60) + " min";
    return Math.floor(seconds / 86400) + " d " + Math.floor((seconds % 86400) / 3600) + " h";
  }

  function short(text, length) { return text.length > length ? text.slice(0, length) + "\u2026" : text; }

  function setConnection(mode, text) {
    var conn = $("conn");
    conn.className = "conn " + mode;
    $("conn-text").textContent = text;
  }

  function showBanner(text) {
    var banner = $("banner");
    banner.hidden = !text;
    banner.textContent = text || "";
  }

  var STATUS_TEXT = { ok: "healthy, ready", loading: "healthy, loading", unhealthy: "unhealthy", unknown: "no report yet" };
  var STATUS_CLASS = { ok: "ok", loading: "loading", unhealthy: "unhealthy" };

  function renderStats(state) {
    var server = state.server;
    $("s-head").textContent = server.head_position.toLocaleString();
    $("s-log").textContent = "log " + short(server.log_id || "\u2013", 12);
    var clients = state.clients;
    var unhealthy = clients.filter(function (c) { return c.status === "unhealthy"; }).length;
    var loading = clients.filter(function (c) { return c.status === "loading"; }).length;
    var behind = clients.filter(function (c) { return c.lag > 0; }).length;
    $("s-clients").textContent = server.client_count.toLocaleString();
    var sub = $("s-clients-sub");
    sub.replaceChildren();
    if (unhealthy) sub.append(el("span", "bad", unhealthy + " unhealthy"), " \u00b7 ");
    if (loading) sub.append(el("span", "warn", loading + " loading"), " \u00b7 ");
    sub.append(clients.length - unhealthy - loading + " healthy");
    $("s-behind").textContent = behind.toLocaleString();
    var maxLag = clients.reduce(function (max, c) { return Math.max(max, c.lag); }, 0);
    $("s-behind-sub").textContent = behind ? "up to " + maxLag + " behind the head" : "every client is caught up";
    var applied = 0, failed = 0, pending = 0;
    state.updates.forEach(function (u) { if (u.failed) failed++; else if (u.pending) pending++; else applied++; });
    $("s-updates").textContent = state.updates.length.toLocaleString();
    var usub = $("s-updates-sub");
    usub.replaceChildren();
    usub.append(applied + " done");
    if (failed) usub.append(" \u00b7 ", el("span", "bad", failed + " with failures"));
    if (pending) usub.append(" \u00b7 ", el("span", "warn", pending + " in flight"));
    $("s-uptime").textContent = duration(server.uptime);
  }

  function clientNote(client) {
    if (client.message) return el("div", client.status === "unhealthy" ? "note bad" : "note warn", client.message);
    // A failure the client has since moved past is history, not an alarm.
    if (client.last_error) return el("div", client.status === "ok" ? "note warn" : "note bad", "last failure: " + client.last_error);
    if (client.status === "unknown") return el("div", "note muted", "no report yet");
    return el("div", "note good", STATUS_TEXT[client.status] || client.status);
  }

  function renderClients(state) {
    var body = $("clients").tBodies[0];
    var rows = state.clients.map(function (client) {
      var tr = el("tr");
      tr.dataset.clientId = client.client_id;
      var dot = el("span", "status-dot " + (STATUS_CLASS[client.status] || ""));
      dot.title = STATUS_TEXT[client.status] || client.status;
      var cell = el("td");
      cell.append(dot);
      tr.append(cell);
      var who = el("td");
      who.append(el("div", "client-id", client.client_id), el("div", "sub-line mono", client.peer));
      tr.append(who);
      tr.append(el("td", "", client.scope));
      var topics = el("td");
      client.topics.forEach(function (topic) { topics.append(el("span", "chip", topic)); });
      tr.append(topics);
      var acked = el("td", "num mono", client.acked_position.toLocaleString());
      acked.title = "acknowledged " + client.acked_position + ", sent " + client.sent_position;
      tr.append(acked);
      var lag = el("td", "num");
      lag.append(el("span", "lag " + (client.lag === 0 ? "zero" : client.lag > 100 ? "far" : "behind"), client.lag.toLocaleString()));
      tr.append(lag);
      var policy = el("td", "mono", client.policy_hash ? short(client.policy_hash, 10) : "\u2013");
      policy.title = client.policy_hash;
      tr.append(policy);
      var since = el("td", "muted", ago(client.connected_at));
      since.title = client.connected_at;
      since.dataset.since = client.connected_at;
      tr.append(since);
      var note = el("td");
      var text = clientNote(client);
      text.title = [client.message, client.last_error && "last failure (" + client.last_failed_update_id + "): " + client.last_error].filter(Boolean).join("\n");
      note.append(text);
      tr.append(note);
      return tr;
    });
    body.replaceChildren.apply(body, rows);
    $("clients-empty").hidden = rows.length > 0;
    $("c-count").textContent = state.server.clients_omitted ? "showing " + state.clients.length + " of " + state.server.client_count : String(state.clients.length);
  }

  var expanded = new Set();

  function deliveryCell(update) {
    var td = el("td");
    var total = update.applied + update.failed + update.pending;
    if (total === 0) {
      td.append(el("span", "badge none", "no clients addressed"));
      return td;
    }
    var bar = el("span", "bar");
    ["applied", "failed", "pending"].forEach(function (state) {
      if (!update[state]) return;
      var part = el("span", state);
      part.style.width = (100 * update[state] / total) + "%";
      bar.append(part);
    });
    td.append(bar);
    ["applied", "failed", "pending"].forEach(function (state) {
      if (update[state]) td.append(el("span", "badge " + state, update[state] + " " + state));
    });
    var failure = update.clients.find(function (c) { return c.state === "failed"; });
    if (failure) {
      var line = el("div", "note bad", failure.client_id + ": " + failure.error);
      line.title = failure.error;
      td.append(line);
    }
    return td;
  }

  function detailRow(update) {
    var tr = el("tr", "detail");
    var td = el("td");
    td.colSpan = 6;
    var table = el("table");
    update.clients.forEach(function (client) {
      var row = el("tr");
      var badge = el("td");
      badge.append(el("span", "badge " + client.state, client.state));
      row.append(badge, el("td", "client-id", client.client_id), el("td", "muted num", client.state === "pending" ? "" : client.latency_ms + " ms"), el("td", "error-text", client.error));
      table.append(row);
    });
    if (update.clients_omitted) {
      var more = el("tr");
      more.append(el("td", "muted", "\u2026 and " + update.clients_omitted + " more"));
      table.append(more);
    }
    if (!update.clients.length) td.append(el("span", "muted", "No client was addressed."));
    else td.append(table);
    tr.append(td);
    return tr;
  }

  function renderUpdates(state) {
    var body = $("updates").tBodies[0];
    var rows = [];
    state.updates.forEach(function (update) {
      var key = update.kind + ":" + update.position;
      var tr = el("tr", "update" + (expanded.has(key) ? " open" : ""));
      tr.dataset.updateId = update.update_id;
      tr.dataset.position = String(update.position);
      tr.dataset.kind = update.kind;
      tr.addEventListener("click", function (event) {
        if (event.target.closest("a")) return;
        if (expanded.has(key)) expanded.delete(key); else expanded.add(key);
        if (current) renderUpdates(current);
      });
      tr.append(el("td", "mono", "#" + update.position));
      var kind = el("td");
      kind.append(el("span", "kind " + (update.kind === "policy" ? "policy" : "data"), update.kind));
      tr.append(kind);
      var what = el("td");
      if (update.kind === "policy") {
        var hash = el("div", "mono", "\u2192 " + short(update.policy_hash || "(none)", 12));
        hash.title = update.policy_hash;
        what.append(hash);
      } else {
        var id = el("div", "mono", short(update.update_id, 18));
        id.title = update.update_id;
        what.append(id);
      }
      if (update.reason) what.append(el("div", "sub-line", short(update.reason, 60)));
      else if (update.kind === "policy") what.append(el("div", "sub-line", "new policy version"));
      if (update.scope && update.scope !== "default") what.append(el("div", "sub-line", "scope " + update.scope));
      tr.append(what);
      var when = el("td", "muted", ago(update.published_at));
      when.title = update.published_at;
      when.dataset.since = update.published_at;
      tr.append(when);
      tr.append(deliveryCell(update));
      var trace = el("td");
      if (update.trace_url && /^https?:\/\//i.test(update.trace_url)) {
        var link = el("a", "trace", "trace \u2197");
        link.href = update.trace_url;
        link.target = "_blank";
        link.rel = "noopener noreferrer";
        link.title = update.trace_id;
        trace.append(link);
      } else if (update.trace_id) {
        trace.append(el("span", "mono muted", short(update.trace_id, 12)));
        trace.title = update.trace_id;
      } else {
        trace.append(el("span", "muted", "\u2013"));
      }
      tr.append(trace);
      rows.push(tr);
      if (expanded.has(key)) rows.push(detailRow(update));
    });
    body.replaceChildren.apply(body, rows);
    $("updates-empty").hidden = rows.length > 0;
    $("u-count").textContent = String(state.updates.length);
  }

  var current = null;
  function render(state) {
    current = state;
    renderStats(state);
    renderClients(state);
    renderUpdates(state);
    $("updated").textContent = "updated " + new Date().toLocaleTimeString();
  }

  // One state request at a time; changes announced meanwhile cause one more.
  var loading = false, again = false, refused = false;
  function refresh() {
    if (loading) { again = true; return; }
    loading = true;
    fetch(api + "state", { headers: headers(), cache: "no-store" })
      .then(function (response) {
        if (response.status === 401 || response.status === 403) {
          // Nothing to retry until another token is given.
          refused = true;
          stopPolling();
          setConnection("offline", "token needed");
          return response.json().catch(function () { return {}; }).then(function (body) {
            showBanner("This server needs a datasource (or service) token: paste it above, or open the page with ?token=\u2026  (" + response.status + ": " + (body && body.detail ? body.detail : "refused") + ")");
            $("token").focus();
            return null;
          });
        }
        if (!response.ok) throw new Error("HTTP " + response.status);
        return response.json();
      })
      .then(function (state) {
        if (!state) return;
        refused = false;
        showBanner("");
        if (feed === "live") setConnection("live", "live");
        else if (feed === "down") setConnection("polling", "polling");
        render(state);
      })
      .catch(function (error) { setConnection("offline", "server unreachable"); showBanner("Cannot load the state: " + error.message); })
      .finally(function () {
        loading = false;
        if (again) { again = false; refresh(); }
      });
  }

  // Live updates: the change feed, read with fetch() so that the token goes in a header
  // (EventSource cannot send one). When it fails, poll until it is back.
  var pollTimer = null;
  function startPolling() { if (!pollTimer && !refused) pollTimer = setInterval(refresh, 2000); }
  function stopPolling() { if (pollTimer) { clearInterval(pollTimer); pollTimer = null; } }
  var streamController = null;
  var feed = "connecting"; // then "live" or "down"
  var generation = 0;

  function restartStream() {
    generation++;
    if (streamController) streamController.abort();
    stream(generation, 0);
  }

  function stream(gen, failures) {
    var controller = new AbortController();
    streamController = controller;
    var watchdog = null;
    var arm = function () { clearTimeout(watchdog); watchdog = setTimeout(function () { controller.abort(); }, 45000); };
    arm();
    fetch(api + "events", { headers: headers(), cache: "no-store", signal: controller.signal })
      .then(function (response) {
        if (response.status === 401 || response.status === 403) { refused = true; refresh(); return; }
        if (!response.ok || !response.body) throw new Error("HTTP " + response.status);
        feed = "live";
        setConnection("live", "live");
        stopPolling();
        failures = 0;
        var reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
        var buffer = "";
        function pump() {
          return reader.read().then(function (chunk) {
            if (chunk.done) throw new Error("the feed ended");
            arm();
            buffer += chunk.value.replace(/\r\n/g, "\n");
            var end;
            while ((end = buffer.indexOf("\n\n")) >= 0) {
              var block = buffer.slice(0, end);
              buffer = buffer.slice(end + 2);
              if (/^event: changed$/m.test(block)) refresh();
            }
            return pump();
          });
        }
        return pump();
      })
      .then(function () { clearTimeout(watchdog); }, function () {
        clearTimeout(watchdog);
        if (gen !== generation || refused) return;
        feed = "down";
        setConnection("polling", "polling");
        startPolling();
        var delay = Math.min(30000, 1000 * Math.pow(2, failures));
        setTimeout(function () { if (gen === generation) stream(gen, failures + 1); }, delay);
      });
  }

  // Relative times move on without new data.
  setInterval(function () {
    document.querySelectorAll("[data-since]").forEach(function (node) { node.textContent = ago(node.dataset.since); });
    if (current) $("s-uptime").textContent = duration(Math.max(0, Math.round((Date.now() - Date.parse(current.server.started_at)) / 1000)));
  }, 1000);

  refresh();
  restartStream();
})();
`;

export const DASHBOARD_PAGE = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>opal-mesh dashboard</title>
<link rel="icon" href="data:,">
<style>${DASHBOARD_STYLE}</style>
</head>
<body>
<header>
  <div class="brand"><span class="mark"></span>opal-mesh <span class="role">distributor dashboard</span></div>
  <div id="conn" class="conn"><span class="dot"></span><span id="conn-text">connecting</span></div>
  <form id="token-form" autocomplete="off">
    <input id="token" type="password" placeholder="token" title="A datasource token (not needed in dev mode)" aria-label="token" autocomplete="off">
    <button type="submit">Use</button>
  </form>
</header>
<main>
  <div id="banner" class="banner" hidden></div>
  <section class="stats">
    <div class="stat"><div class="label">Head position</div><div class="value" id="s-head">&ndash;</div><div class="sub" id="s-log"></div></div>
    <div class="stat"><div class="label">Clients</div><div class="value" id="s-clients">&ndash;</div><div class="sub" id="s-clients-sub"></div></div>
    <div class="stat"><div class="label">Behind the head</div><div class="value" id="s-behind">&ndash;</div><div class="sub" id="s-behind-sub"></div></div>
    <div class="stat"><div class="label">Recent updates</div><div class="value" id="s-updates">&ndash;</div><div class="sub" id="s-updates-sub"></div></div>
    <div class="stat"><div class="label">Uptime</div><div class="value" id="s-uptime">&ndash;</div><div class="sub" id="updated"></div></div>
  </section>
  <section class="panel">
    <h2>Clients <span class="count" id="c-count"></span></h2>
    <table id="clients">
      <thead><tr><th></th><th>Client</th><th>Scope</th><th>Topics</th><th class="num">Acked</th><th class="num">Lag</th><th>Policy</th><th>Connected</th><th>State</th></tr></thead>
      <tbody></tbody>
    </table>
    <div class="empty" id="clients-empty" hidden>No client is connected to this distributor.</div>
  </section>
  <section class="panel">
    <h2>Recent updates <span class="count" id="u-count"></span></h2>
    <table id="updates">
      <thead><tr><th>Position</th><th>Kind</th><th>Update</th><th>Published</th><th>Delivery</th><th>Trace</th></tr></thead>
      <tbody></tbody>
    </table>
    <div class="empty" id="updates-empty" hidden>No update dispatched yet.</div>
  </section>
</main>
<script>${DASHBOARD_SCRIPT}</script>
</body>
</html>
`;
