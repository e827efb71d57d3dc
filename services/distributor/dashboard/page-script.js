// @ts-check
/**
 * The dashboard page's script, served inline (its hash is in the page's CSP). Plain
 * browser JavaScript with no build step; `tsc -p tsconfig.dashboard.json` checks it
 * against the DOM library and the JSON types in state-types.ts. Text from clients and
 * sources goes in with textContent only, never parsed as HTML. It is one file (near 500
 * lines) because it is served inline under that hash, with no module loading.
 */
/** @typedef {import("./state-types.js").DashboardState} DashboardState */
/** @typedef {import("./state-types.js").DashboardClient} DashboardClient */
/** @typedef {import("./state-types.js").DashboardUpdate} DashboardUpdate */
/** @typedef {"applied" | "failed" | "pending" | "disconnected" | "unconfirmed"} DeliveryCount */
(function () {
  "use strict";
  var TOKEN_KEY = "opal-mesh-dashboard-token";
  var api = location.pathname.replace(/\/+$/, "") + "/api/";
  /**
   * The page's own element with that id; the page always has it, so a missing one is a bug.
   * @param {string} id
   * @returns {HTMLElement}
   */
  var $ = function (id) {
    var node = document.getElementById(id);
    if (!node) throw new Error("the page has no #" + id);
    return node;
  };
  /** @param {string} id */
  var input = function (id) { return /** @type {HTMLInputElement} */ ($(id)); };
  /** @param {string} id */
  var tableBody = function (id) {
    var body = /** @type {HTMLTableElement} */ ($(id)).tBodies[0];
    if (!body) throw new Error("#" + id + " has no tbody");
    return body;
  };

  // A token given as ?token= is kept for this tab and taken out of the address bar.
  var params = new URLSearchParams(location.search);
  var token = params.get("token") || sessionStorage.getItem(TOKEN_KEY) || "";
  if (params.has("token")) {
    sessionStorage.setItem(TOKEN_KEY, token);
    params.delete("token");
    var rest = params.toString();
    history.replaceState(null, "", location.pathname + (rest ? "?" + rest : "") + location.hash);
  }
  input("token").value = token;
  $("token-form").addEventListener("submit", function (event) {
    event.preventDefault();
    token = input("token").value.trim();
    if (token) sessionStorage.setItem(TOKEN_KEY, token); else sessionStorage.removeItem(TOKEN_KEY);
    refused = false;
    restartStream();
    refresh();
  });

  /** @returns {Record<string, string>} */
  function headers() { return token ? { authorization: "Bearer " + token } : {}; }

  /**
   * @param {string} tag
   * @param {string} [className]
   * @param {unknown} [text]
   */
  function el(tag, className, text) {
    var node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  /** @param {string} iso */
  function ago(iso) {
    var seconds = Math.max(0, Math.round((Date.now() - Date.parse(iso)) / 1000));
    if (seconds < 5) return "just now";
    if (seconds < 60) return seconds + " s ago";
    if (seconds < 3600) return Math.floor(seconds / 60) + " min ago";
    if (seconds < 86400) return Math.floor(seconds / 3600) + " h ago";
    return Math.floor(seconds / 86400) + " d ago";
  }

  /** @param {number} seconds */
  function duration(seconds) {
    if (seconds < 60) return seconds + " s";
    if (seconds < 3600) return Math.floor(seconds / 60) + " min";
    if (seconds < 86400) return Math.floor(seconds / 3600) + " h " + Math.floor((seconds % 3600) / 60) + " min";
    return Math.floor(seconds / 86400) + " d " + Math.floor((seconds % 86400) / 3600) + " h";
  }

  /**
   * @param {string} text
   * @param {number} length
   */
  function short(text, length) { return text.length > length ? text.slice(0, length) + "\u2026" : text; }
  /** @param {number} count */
  function bytes(count) {
    var units = ["B", "KiB", "MiB", "GiB"];
    var unit = 0;
    while (count >= 1024 && unit < units.length - 1) { count /= 1024; unit++; }
    return (unit === 0 ? count : count.toFixed(1)) + " " + units[unit];
  }

  /**
   * @param {"live" | "polling" | "offline"} mode
   * @param {string} text
   */
  function setConnection(mode, text) {
    var conn = $("conn");
    conn.className = "conn " + mode;
    $("conn-text").textContent = text;
  }

  /** @param {string} text */
  function showBanner(text) {
    var banner = $("banner");
    banner.hidden = !text;
    banner.textContent = text || "";
  }

  /** @type {Record<string, string>} */
  var STATUS_TEXT = { ok: "healthy, ready", loading: "healthy, loading", unhealthy: "unhealthy", unknown: "no report yet" };
  /** @type {Record<string, string>} */
  var STATUS_CLASS = { ok: "ok", loading: "loading", unhealthy: "unhealthy" };

  /** @param {DashboardState} state */
  function renderStats(state) {
    var server = state.server;
    $("s-head").textContent = server.head_position.toLocaleString();
    $("s-log").textContent = "log " + short(server.log_id || "\u2013", 12);
    // What a late, emptied or resynced client writes with its baseline.
    $("s-snapshot").textContent = server.snapshot_entries.toLocaleString() + " entries";
    var snapshotSub = $("s-snapshot-sub");
    snapshotSub.replaceChildren();
    if (server.snapshot_incomplete) snapshotSub.append(el("span", "bad", "incomplete: " + server.snapshot_incomplete));
    else snapshotSub.append(bytes(server.snapshot_bytes));
    var clients = state.clients;
    var unhealthy = clients.filter(function (c) { return c.status === "unhealthy"; }).length;
    var loading = clients.filter(function (c) { return c.status === "loading"; }).length;
    var behind = clients.filter(function (c) { return c.lag > 0; }).length;
    $("s-clients").textContent = server.client_count.toLocaleString();
    var sub = $("s-clients-sub");
    sub.replaceChildren();
    if (unhealthy) sub.append(el("span", "bad", unhealthy + " unhealthy"), " \u00b7 ");
    if (loading) sub.append(el("span", "warn", loading + " loading"), " \u00b7 ");
    var stale = clients.filter(function (c) { return c.stale; }).length;
    if (stale) sub.append(el("span", "bad", stale + " stale"), " \u00b7 ");
    sub.append(clients.length - unhealthy - loading + " healthy");
    $("s-behind").textContent = behind.toLocaleString();
    var maxLag = clients.reduce(function (max, c) { return Math.max(max, c.lag); }, 0);
    $("s-behind-sub").textContent = behind ? "up to " + maxLag + " behind the head" : "every client is caught up";
    var applied = 0, failed = 0, pending = 0, unconfirmed = 0;
    // An update some client could not confirm (an OPAL client without reports) is not "done".
    state.updates.forEach(function (u) { if (u.failed) failed++; else if (u.pending) pending++; else if (u.unconfirmed) unconfirmed++; else applied++; });
    $("s-updates").textContent = state.updates.length.toLocaleString();
    var usub = $("s-updates-sub");
    usub.replaceChildren();
    usub.append(applied + " done");
    if (failed) usub.append(" \u00b7 ", el("span", "bad", failed + " with failures"));
    if (pending) usub.append(" \u00b7 ", el("span", "warn", pending + " in flight"));
    if (unconfirmed) usub.append(" \u00b7 " + unconfirmed + " sent, unconfirmed");
    $("s-uptime").textContent = duration(server.uptime);
  }

  /** @param {DashboardClient} client */
  function clientNote(client) {
    if (client.message) return el("div", client.status === "unhealthy" ? "note bad" : "note warn", client.message);
    // A failure the client has since moved past is history, not an alarm.
    if (client.last_error) return el("div", client.status === "ok" ? "note warn" : "note bad", "last failure: " + client.last_error);
    if (client.status === "unknown") return el("div", "note muted", "no report yet");
    return el("div", "note good", STATUS_TEXT[client.status] || client.status);
  }

  /** @param {DashboardState} state */
  function renderClients(state) {
    var body = tableBody("clients");
    var rows = state.clients.map(function (client) {
      var tr = el("tr");
      tr.dataset.clientId = client.client_id;
      var dot = el("span", "status-dot " + (STATUS_CLASS[client.status] || ""));
      dot.title = STATUS_TEXT[client.status] || client.status;
      var cell = el("td");
      cell.append(dot);
      tr.append(cell);
      var who = el("td");
      var name = el("div", "client-id", client.client_id);
      // An unmodified OPAL client on /ws: which updater this connection is, and whether its deliveries are confirmed.
      if (client.protocol === "opal") {
        var opal = el("span", "badge opal", "OPAL" + (client.opal_updater ? " " + client.opal_updater : ""));
        opal.title = "an OPAL client on OPAL's websocket (/ws)";
        name.append(" ", opal);
        if (!client.confirms) {
          var silent = el("span", "badge unconfirmed", "no update reports");
          silent.title = "its deliveries count as sent, unconfirmed (OPAL_SHOULD_REPORT_ON_DATA_UPDATES is off, or it has not reported yet)";
          name.append(" ", silent);
        }
      }
      // Decisions on its OPA may be denying (data.system.opal.stale, when the policy says so).
      if (client.stale) {
        var stale = el("span", "badge stale", "stale");
        stale.title = client.stale_reason || "the data in its OPA counts as stale";
        name.append(" ", stale);
      }
      who.append(name, el("div", "sub-line mono", client.peer));
      // Its labels (OPAL_MESH_CLIENT_LABELS): what staged rollout picks canaries by.
      var labels = el("div", "labels");
      Object.keys(client.labels || {}).forEach(function (key) { labels.append(el("span", "chip label", key + "=" + client.labels[key])); });
      if (labels.childElementCount) who.append(labels);
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
      // During a staged rollout: who already holds the candidate.
      if (state.rollout && client.policy_hash === state.rollout.candidate) policy.append(" ", el("span", "badge candidate", "candidate"));
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
    body.replaceChildren(...rows);
    $("clients-empty").hidden = rows.length > 0;
    $("c-count").textContent = state.server.clients_omitted ? "showing " + state.clients.length + " of " + state.server.client_count : String(state.clients.length);
  }

  /** @type {Set<string>} */
  var expanded = new Set();
  /** @type {DeliveryCount[]} */
  var COUNTS = ["applied", "failed", "pending", "unconfirmed", "disconnected"];
  /** @type {Record<DeliveryCount, string>} */
  var COUNT_TEXT = { applied: "applied", failed: "failed", pending: "pending", unconfirmed: "sent, unconfirmed", disconnected: "disconnected" };

  /** @param {DashboardUpdate} update */
  function deliveryCell(update) {
    var td = el("td");
    var total = update.applied + update.failed + update.pending + update.disconnected + update.unconfirmed;
    if (total === 0) {
      td.append(el("span", "badge none", "no clients addressed"));
      return td;
    }
    var bar = el("span", "bar");
    COUNTS.forEach(function (state) {
      if (!update[state]) return;
      var part = el("span", state);
      part.style.width = (100 * update[state] / total) + "%";
      bar.append(part);
    });
    td.append(bar);
    COUNTS.forEach(function (state) {
      if (update[state]) td.append(el("span", "badge " + state, update[state] + " " + COUNT_TEXT[state]));
    });
    var failure = update.clients.find(function (c) { return c.state === "failed"; });
    if (failure) {
      var line = el("div", "note bad", failure.client_id + ": " + failure.error);
      line.title = failure.error;
      td.append(line);
    }
    return td;
  }

  /** @param {DashboardUpdate} update */
  function detailRow(update) {
    var tr = el("tr", "detail");
    var td = /** @type {HTMLTableCellElement} */ (el("td"));
    td.colSpan = 6;
    var table = el("table");
    update.clients.forEach(function (client) {
      var row = el("tr");
      var badge = el("td");
      badge.append(el("span", "badge " + client.state, COUNT_TEXT[client.state] || client.state));
      var unacked = client.state === "pending" || client.state === "disconnected" || client.state === "unconfirmed";
      row.append(badge, el("td", "client-id", client.client_id), el("td", "muted num", unacked ? "" : client.latency_ms + " ms"), el("td", "error-text", client.error));
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

  /** @param {DashboardState} state */
  function renderUpdates(state) {
    var body = tableBody("updates");
    /** @type {HTMLElement[]} */
    var rows = [];
    state.updates.forEach(function (update) {
      var key = update.kind + ":" + update.position;
      var tr = el("tr", "update" + (expanded.has(key) ? " open" : ""));
      tr.dataset.updateId = update.update_id;
      tr.dataset.position = String(update.position);
      tr.dataset.kind = update.kind;
      tr.addEventListener("click", function (event) {
        if (event.target instanceof Element && event.target.closest("a")) return;
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
        var link = /** @type {HTMLAnchorElement} */ (el("a", "trace", "trace \u2197"));
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
    body.replaceChildren(...rows);
    $("updates-empty").hidden = rows.length > 0;
    $("u-count").textContent = String(state.updates.length);
  }

  /** A staged rollout in its canary stage: the candidate, the stable version, who the canaries are. @param {DashboardState} state */
  function renderRollout(state) {
    var box = $("rollout");
    box.hidden = !state.rollout;
    if (!state.rollout) return;
    var r = state.rollout;
    var holding = state.clients.filter(function (c) { return c.policy_hash === r.candidate; }).length;
    box.replaceChildren(el("strong", "", "Staged rollout "), el("span", "mono", short(r.candidate, 12)), " on the canaries (" + r.canaries + "), " + holding + " of " + state.clients.length + " clients hold it; the others keep ", el("span", "mono", short(r.stable, 12)), r.reason ? " \u2014 " + r.reason : "");
  }

  /** @type {DashboardState | null} */
  var current = null;
  /** @param {DashboardState} state */
  function render(state) {
    current = state;
    renderStats(state);
    renderRollout(state);
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
          return response.json().catch(function () { return {}; }).then(function (/** @type {{ detail?: string }} */ body) {
            showBanner("This server needs a datasource (or service) token: paste it above, or open the page with ?token=\u2026  (" + response.status + ": " + (body && body.detail ? body.detail : "refused") + ")");
            $("token").focus();
            return null;
          });
        }
        if (!response.ok) throw new Error("HTTP " + response.status);
        return response.json();
      })
      .then(function (/** @type {DashboardState | null} */ state) {
        if (!state) return;
        refused = false;
        showBanner("");
        if (feed === "live") setConnection("live", "live");
        else if (feed === "down") setConnection("polling", "polling");
        render(state);
      })
      .catch(function (error) { setConnection("offline", "server unreachable"); showBanner("Cannot load the state: " + (error instanceof Error ? error.message : String(error))); })
      .finally(function () {
        loading = false;
        if (again) { again = false; refresh(); }
      });
  }

  // Live updates: the change feed, read with fetch() so that the token goes in a header
  // (EventSource cannot send one). When it fails, poll until it is back.
  /** @type {ReturnType<typeof setInterval> | null} */
  var pollTimer = null;
  function startPolling() { if (!pollTimer && !refused) pollTimer = setInterval(refresh, 2000); }
  function stopPolling() { if (pollTimer) { clearInterval(pollTimer); pollTimer = null; } }
  /** @type {AbortController | null} */
  var streamController = null;
  var feed = "connecting"; // then "live" or "down"
  var generation = 0;

  function restartStream() {
    generation++;
    if (streamController) streamController.abort();
    stream(generation, 0);
  }

  /**
   * @param {number} gen
   * @param {number} failures
   */
  function stream(gen, failures) {
    var controller = new AbortController();
    streamController = controller;
    /** @type {ReturnType<typeof setTimeout> | undefined} */
    var watchdog;
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
        /** @returns {Promise<void>} */
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
    document.querySelectorAll("[data-since]").forEach(function (node) {
      if (node instanceof HTMLElement) node.textContent = ago(node.dataset.since || "");
    });
    if (current) $("s-uptime").textContent = duration(Math.max(0, Math.round((Date.now() - Date.parse(current.server.started_at)) / 1000)));
  }, 1000);

  refresh();
  restartStream();
})();
