/** On a terminal, `opal-mesh client` shows how far the baseline load (every data source) is. */
import { SingleBar } from "cli-progress";
import type { ClientAgent } from "../../client/agent.js";

export function showBaselineProgress(agent: ClientAgent): void {
  let bar: SingleBar | undefined;
  agent.onBaselineProgress((done, total) => {
    if (total < 2) return; // one source: nothing worth a bar
    if (bar === undefined) {
      bar = new SingleBar({ format: "loading data sources [{bar}] {value}/{total}", stream: process.stderr, hideCursor: true, clearOnComplete: true });
      bar.start(total, 0);
    }
    bar.update(done);
    if (done >= total) {
      bar.stop();
      bar = undefined;
    }
  });
}
