/** Security cases: a client never claims a state its OPA does not hold. */
import type { Tally } from "../helpers/attacks.js";

export function healthTruthCases(tally: Tally): void {
  void tally;
}
