/** Security cases: delivery status never waits on a client that left; one stream per client id. */
import type { Tally } from "../helpers/attacks.js";

export function deliveryStatusCases(tally: Tally): void {
  void tally;
}
