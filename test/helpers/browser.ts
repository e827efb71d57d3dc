/**
 * A real headless Chromium (Debian's, provisioned by scripts/ensure-chromium.js) driven by
 * playwright-core, which brings no browser of its own. Missing, the test fails with how to
 * install it: a browser test that silently skips proves nothing.
 */
import { type Browser, chromium } from "playwright-core";

// The flags keep Chromium off the network it would otherwise reach for on its own (this
// machine's network is closed: QUIC, component updates and sync would hang or fail).
const FLAGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"];

export async function launchChromium(): Promise<Browser> {
  // A plain JS script without declarations: imported by URL, typed here.
  const script = new URL("../../scripts/ensure-chromium.js", import.meta.url).href;
  const { findChromium, CHROMIUM_MISSING } = (await import(script)) as { findChromium: () => string | undefined; CHROMIUM_MISSING: string };
  const executablePath = findChromium();
  if (executablePath === undefined) throw new Error(CHROMIUM_MISSING);
  return chromium.launch({ executablePath, args: FLAGS });
}
