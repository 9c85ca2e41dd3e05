import { existsSync } from 'node:fs';
import { chromium, type BrowserContext } from 'playwright-core';

/** Debian's browser, which the browser tests drive through playwright-core. */
export const CHROMIUM = '/usr/bin/chromium';

// No network of its own (updates, sync, QUIC probes), so only the page's own requests are seen.
const ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

/** Throws with the install command when Debian's Chromium is absent. */
export function requireChromium(): void {
  if (!existsSync(CHROMIUM))
    throw new Error(
      `${CHROMIUM} is missing: install Debian's browser with 'apt-get install -y chromium' (.ci/run does it)`,
    );
}

/** Headless Chromium with its profile in `profile` and a 1280×900 viewport. */
export function launchChromium(profile: string, opts: { acceptDownloads?: boolean } = {}): Promise<BrowserContext> {
  return chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    args: ARGS,
    headless: true,
    ...opts,
    viewport: { width: 1280, height: 900 },
  });
}
