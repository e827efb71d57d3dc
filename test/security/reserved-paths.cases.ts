/** Security cases: no publisher writes into OPA's system namespace or the client's own documents. */
import type { Tally } from "../helpers/attacks.js";

export function reservedPathCases(tally: Tally): void {
  void tally;
}
