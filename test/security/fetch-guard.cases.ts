/** Security cases: a publisher cannot turn the client's fetcher against its own OPA, its API or internal addresses. */
import type { Tally } from "../helpers/attacks.js";

export function fetchGuardCases(tally: Tally): void {
  void tally;
}
