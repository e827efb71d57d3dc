/**
 * A producer with a high rate: 10,000 updates over one TriggerService.PublishStream
 * (grpc-js, many updates per message, up to 1,024 unanswered), each writing
 * {"value": n} at /examples/stream/k<n % 100>. Prints a few positions, the rate, and
 * whatever the server refused; with --wait the last update waits for its delivery.
 *
 *   node --import tsx examples/publish-stream.ts [server-url] [count] [datasource-token] [--wait]
 *   (server-url defaults to http://127.0.0.1:7002, what `npm start` serves; the token only
 *   when the server has auth keys: `opal-mesh obtain-token --type datasource`)
 */
import { StreamPublisher, statusName } from "../services/mesh/cli/publish-stream-client.js";

const args = process.argv.slice(2).filter((arg) => !arg.startsWith("--"));
const [serverUrl = "http://127.0.0.1:7002", countText = "10000", token] = args;
const count = Number(countText);
const waitLast = process.argv.includes("--wait");

const publisher = new StreamPublisher({ url: serverUrl, token });
const started = performance.now();
const outcomes = [];
for (let n = 0; n < count; n++) {
  // At most 1,024 unanswered: the producer waits here rather than queue without bound.
  await publisher.room();
  const wait = waitLast && n === count - 1;
  outcomes.push(publisher.publish({ entries: [{ dstPath: `/examples/stream/k${n % 100}`, topics: ["policy_data"], data: { kind: { case: "structValue", value: { fields: { value: { kind: { case: "numberValue", value: n } } } } } } }], reason: "example", wait }));
}
const results = await Promise.all(outcomes);
const status = await publisher.end();
const seconds = (performance.now() - started) / 1000;
publisher.close();

const refused = results.filter((outcome) => outcome.error !== undefined);
for (const outcome of [results[0], results[Math.floor(count / 2)], results[count - 1]]) {
  if (outcome !== undefined && outcome.error === undefined) console.log(`update ${outcome.index}: id ${outcome.id}, position ${outcome.position}`);
}
console.log(`${count - refused.length} of ${count} updates published in ${seconds.toFixed(2)} s: ${Math.round(count / seconds)} updates/s over one stream (the stream ended ${statusName(status.code)}${status.details === "" ? "" : `: ${status.details}`})`);
for (const outcome of refused.slice(0, 5)) console.log(`update ${outcome.index} refused: ${outcome.error?.code} ${outcome.error?.message}`);
const last = results[count - 1];
if (last?.delivery !== undefined) console.log(`last update: applied by ${last.delivery.applied}, failed by ${last.delivery.failed}, pending at ${last.delivery.pending} client(s)`);
process.exitCode = refused.length === 0 ? 0 : 1;
