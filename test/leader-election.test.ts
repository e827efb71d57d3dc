/**
 * The policy publisher's election on a real Kafka broker, with the fault test's short
 * session timeout: exactly one of three members leads and keeps leading while nothing
 * happens (no churn: an idle member must heartbeat within its session), a cleanly stopped
 * leader is replaced, nobody claims leadership while the broker is away, and exactly one
 * leads again once it is back.
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { KafkaLeaderElection } from "../services/policy-watcher/leader-election.js";
import { createLogger } from "../services/common/logger.js";
import { type RunningKafka, startTestKafka } from "./helpers/kafka.js";
import { waitFor } from "./helpers/wait.js";

const SESSION_TIMEOUT_MS = 2_000;
let kafka: RunningKafka;
let members: KafkaLeaderElection[] = [];
const logger = createLogger({ level: "warn", format: "json" });

const leaders = (among: readonly KafkaLeaderElection[] = members) => among.filter((member) => member.isLeader);

/** Watches the members for `ms`: the same single one must lead at every look. */
async function holdsSteady(ms: number, among: readonly KafkaLeaderElection[]): Promise<void> {
  const [leader] = leaders(among);
  const until = Date.now() + ms;
  let looks = 0;
  while (Date.now() < until) {
    const now = leaders(among);
    assert.equal(now.length, 1, `exactly one leader at every look (look ${looks}: ${now.length})`);
    assert.equal(now[0], leader, `the same leader throughout (look ${looks})`);
    looks++;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  assert.ok(looks > 10);
}

before(async () => {
  kafka = await startTestKafka();
  members = [0, 1, 2].map((index) => new KafkaLeaderElection({ client: { brokers: [kafka.bootstrap], clientId: `member-${index}` }, topic: "election-test", group: "election-test", sessionTimeoutMs: SESSION_TIMEOUT_MS, logger }));
  await Promise.all(members.map((member) => member.start()));
});

after(async () => {
  await Promise.all(members.map((member) => member.stop()));
  await kafka?.destroy();
});

test("exactly one member leads, and goes on leading while nothing happens", async () => {
  await waitFor(() => leaders().length === 1, { timeoutMs: 30_000, message: "one elected member" });
  // Several session timeouts: an idle member that missed heartbeats would churn here.
  await holdsSteady(4 * SESSION_TIMEOUT_MS, members);
});

test("a cleanly stopped leader is replaced by one of the others", async () => {
  const [leader] = leaders();
  assert.ok(leader !== undefined);
  await leader.stop();
  const rest = members.filter((member) => member !== leader);
  await waitFor(() => leaders(rest).length === 1, { timeoutMs: 20_000, message: "another member elected" });
  assert.equal(leader.isLeader, false);
  await holdsSteady(2 * SESSION_TIMEOUT_MS, rest);
  members = rest;
});

test("nobody claims leadership while the broker is away; one leads again after", async () => {
  await kafka.stop();
  // The lease lapses within a session timeout (and a heartbeat interval) of the last heartbeat.
  await waitFor(() => leaders().length === 0, { timeoutMs: 2 * SESSION_TIMEOUT_MS + 2_000, message: "no member to claim leadership without the broker" });
  await kafka.restart();
  // Members come back one by one (each reconnects with its own backoff), and each arrival
  // is a rebalance with nobody leading for a moment: wait for one leader that holds.
  await waitFor(
    async () => {
      if (leaders().length !== 1) return false;
      await holdsSteady(2 * SESSION_TIMEOUT_MS, members);
      return true;
    },
    { timeoutMs: 90_000, message: "one member leading steadily after the broker came back" },
  );
});

test("after the outage every member is back in the group: stopping the leader hands over again", async () => {
  // A member stuck outside the group (a consumer that never came back) would never be elected.
  const [leader] = leaders();
  assert.ok(leader !== undefined);
  await leader.stop();
  const rest = members.filter((member) => member !== leader);
  await waitFor(() => leaders(rest).length === 1, { timeoutMs: 30_000, message: "the other member elected after the outage" });
  await holdsSteady(2 * SESSION_TIMEOUT_MS, rest);
  members = rest;
});
