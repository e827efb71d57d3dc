/**
 * A log event as OPAL's server would have published it to its pub/sub, for an OPAL client
 * of one scope: the topics it goes to and the notification's `data`.
 *
 * - A data update is OPAL's `DataUpdate` JSON. As OPAL's `DataUpdatePublisher` does, each
 *   entry's topics are expanded to every prefix (`policy_data/users` → `policy_data`,
 *   `policy_data/users`), because OPAL's client keeps an entry only when one of its
 *   topics is exactly one it subscribed to, and the event goes to the union of them.
 * - A policy change is OPAL's `PolicyUpdateMessage`, to `policy:<dir>` for every changed
 *   directory and each of its parents (`.` included), as OPAL's watcher publishes it.
 * - Scope notices have no OPAL counterpart (OPAL clients read a scope's data config only
 *   when they connect): none.
 *
 * Built once per event and scope (every OPAL connection of that scope shares it); only
 * the callback list differs per connection, so the JSON is kept in two halves.
 */
import type { DataSourceEntry, DataUpdate } from "../../../gen/opal/mesh/v1/data_pb.js";
import type { Event } from "../../../gen/opal/mesh/v1/event_pb.js";
import { saveMethodName } from "../../common/data-entries.js";
import { DEFAULT_SCOPE, scopeTopic } from "../../common/scopes/scoped-topics.js";

export interface OpalEvent {
  kind: "data" | "policy";
  /** OPAL topic names the event is published to, in the order OPAL's client would see them. */
  topics: readonly string[];
  /** The data update's id (empty for a policy change). */
  updateId: string;
  /** Why OPAL's client would refuse the whole update (its inline data must be an object or a list), if it would. */
  refusal?: string;
  /** The notification's data as JSON text; `callbackUrl` is added to a data update's callbacks. */
  body(callbackUrl: string | undefined): string;
}

const decoder = new TextDecoder();

/** `a/b/c` → `a`, `a/b`, `a/b/c` (OPAL's `get_topic_combos`). */
export function topicCombos(topic: string): string[] {
  const parts = topic.split("/");
  return parts.map((_part, index) => parts.slice(0, index + 1).join("/"));
}

/** A changed directory and its parents up to the repository root `.`. */
export function withParentDirectories(dirs: readonly string[]): string[] {
  const all = new Set<string>();
  for (const dir of dirs) {
    const clean = dir.replace(/^\.\/+/, "").replace(/\/+$/, "");
    all.add(".");
    if (clean === "" || clean === ".") continue;
    const parts = clean.split("/");
    for (let index = parts.length; index > 0; index--) all.add(parts.slice(0, index).join("/"));
  }
  return [...all];
}

/** The event as OPAL's pub/sub would carry it to a client of `scope`; undefined when OPAL clients get nothing. */
export function opalEventOf(event: Event, scope: string = DEFAULT_SCOPE): OpalEvent | undefined {
  const payload = event.payload;
  if (payload.case === "dataUpdate") return dataEvent(payload.value, scope);
  if (payload.case === "policyChanged") {
    const dirs = withParentDirectories(payload.value.dirs.length > 0 ? payload.value.dirs : ["."]);
    const body = JSON.stringify({ old_policy_hash: payload.value.oldHash || null, new_policy_hash: payload.value.hash, changed_directories: dirs });
    return { kind: "policy", topics: dirs.map((dir) => scopeTopic(scope, `policy:${dir}`)), updateId: "", body: () => body };
  }
  return undefined;
}

function dataEvent(update: DataUpdate, scope: string): OpalEvent {
  const union = new Set<string>();
  const entries = update.entries.map((entry) => {
    const topics = [...new Set(entry.topics.flatMap(topicCombos))].map((topic) => scopeTopic(scope, topic));
    for (const topic of topics) union.add(topic);
    return entryJson(entry, topics);
  });
  const callbacks = update.callbacks.map((callback) =>
    callback.configJson.length === 0 ? JSON.stringify(callback.url) : `[${JSON.stringify(callback.url)},${decoder.decode(callback.configJson)}]`,
  );
  const scalar = update.entries.findIndex((entry) => entry.dataJson !== undefined && !/^\s*[[{]/.test(decoder.decode(entry.dataJson)));
  const head = `{"id":${JSON.stringify(update.id)},"entries":[${entries.join(",")}],"reason":${JSON.stringify(update.reason)},"callback":{"callbacks":[`;
  return {
    kind: "data",
    topics: [...union],
    updateId: update.id,
    ...(scalar < 0 ? {} : { refusal: `entries[${scalar}]: OPAL's client accepts only an object or a list as inline data` }),
    body: (callbackUrl) => `${head}${(callbackUrl === undefined ? callbacks : [...callbacks, reportCallback(callbackUrl)]).join(",")}]}}`,
  };
}

/**
 * Our report URL as OPAL's `[url, HttpFetcherConfig]` pair, never a bare URL: OPAL's client
 * (0.9.x) gives every bare-URL callback one shared config object and sets the report body on
 * it, so reports of updates applied at once overwrite each other (one update reported twice,
 * another never). A pair is parsed into a config of its own for each update. (The
 * publisher's own bare-URL callbacks stay as given: they get the client's configured
 * headers, and OPAL's race.)
 */
export function reportCallback(url: string): string {
  return `[${JSON.stringify(url)},{"method":"post","headers":{"content-type":"application/json"},"process_data":false}]`;
}

/**
 * OPAL's DataSourceEntry. OPAL has no DELETE (its #430): a delete reaches OPAL's client as
 * the JSON Patch `remove` of the last segment at the parent path, which OPA applies the
 * same way (and refuses, like our own client's DELETE is a no-op, when the path is absent).
 */
function entryJson(entry: DataSourceEntry, topics: readonly string[]): string {
  let dstPath = entry.dstPath;
  let saveMethod: string = saveMethodName(entry.saveMethod);
  let data = entry.dataJson === undefined ? undefined : decoder.decode(entry.dataJson);
  if (saveMethod === "DELETE") {
    const segments = dstPath.split("/").filter((segment) => segment !== "");
    const last = segments.pop() ?? "";
    dstPath = `/${segments.join("/")}`;
    saveMethod = "PATCH";
    data = JSON.stringify([{ op: "remove", path: `/${last.replaceAll("~", "~0").replaceAll("/", "~1")}` }]);
  }
  const fields = [
    `"url":${JSON.stringify(entry.url)}`,
    `"config":${entry.configJson.length > 0 ? decoder.decode(entry.configJson) : "null"}`,
    `"topics":${JSON.stringify(topics)}`,
    `"dst_path":${JSON.stringify(dstPath)}`,
    `"save_method":${JSON.stringify(saveMethod)}`,
  ];
  if (data !== undefined) fields.push(`"data":${data}`);
  if (entry.periodicUpdateInterval !== undefined) fields.push(`"periodic_update_interval":${entry.periodicUpdateInterval}`);
  return `{${fields.join(",")}}`;
}
