/**
 * The dashboard page: one self-contained document (inline style and script, no external
 * assets, no framework, no build step). The script (page-script.js, checked by
 * `tsc -p tsconfig.dashboard.json` and eslint) reads the state from /dashboard/api/state
 * when the change feed says something changed (polling when the feed is unavailable) and
 * renders it with textContent only: client ids and errors come from clients and sources
 * and are never parsed as HTML.
 */
import { readFileSync } from "node:fs";

// Read once at load: both are served inline, their hashes go into the page's CSP.
const asset = (name: string): string => readFileSync(new URL(name, import.meta.url), "utf8");

export const DASHBOARD_STYLE = asset("./page.css");
export const DASHBOARD_SCRIPT = asset("./page-script.js");

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
  <div id="rollout" class="rollout" hidden></div>
  <section class="stats">
    <div class="stat"><div class="label">Head position</div><div class="value" id="s-head">&ndash;</div><div class="sub" id="s-log"></div></div>
    <div class="stat"><div class="label">Clients</div><div class="value" id="s-clients">&ndash;</div><div class="sub" id="s-clients-sub"></div></div>
    <div class="stat"><div class="label">Behind the head</div><div class="value" id="s-behind">&ndash;</div><div class="sub" id="s-behind-sub"></div></div>
    <div class="stat"><div class="label">Recent updates</div><div class="value" id="s-updates">&ndash;</div><div class="sub" id="s-updates-sub"></div></div>
    <div class="stat"><div class="label">Snapshot</div><div class="value" id="s-snapshot">&ndash;</div><div class="sub" id="s-snapshot-sub"></div></div>
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
