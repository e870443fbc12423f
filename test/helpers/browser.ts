/**
 * Debian's Chromium, driven by playwright-core (no downloaded browser). The package may still
 * be installing when the tests start (the install script logs to /tmp/chromium-install.log
 * and ends it with "exit N"): wait for it, bounded.
 */
import { existsSync, readFileSync } from 'node:fs';
import { chromium, type Browser } from 'playwright-core';

export const CHROMIUM_PATH = '/usr/bin/chromium';
const INSTALL_LOG = '/tmp/chromium-install.log';

const ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'];

/** Resolves with the executable once it is installed; throws after timeoutMs or when the install failed. */
export async function waitForChromium(timeoutMs: number): Promise<string> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const exit = installExit();
    if (exit !== undefined && exit !== 0) throw new Error(`installing Chromium failed (exit ${exit}); see ${INSTALL_LOG}`);
    // While an install is logging (no "exit" line yet), the binary may exist but be half-configured.
    const installing = existsSync(INSTALL_LOG) && exit === undefined;
    if (!installing && existsSync(CHROMIUM_PATH)) return CHROMIUM_PATH;
    if (Date.now() > deadline) {
      throw new Error(`Chromium is not ready at ${CHROMIUM_PATH} after ${timeoutMs} ms${installing ? ' (still installing)' : ''}; install the Debian package: scripts/system-deps.sh`);
    }
    await new Promise((resolve) => setTimeout(resolve, 1000));
  }
}

/** The exit status of the install, when its log says it finished. */
function installExit(): number | undefined {
  let log: string;
  try {
    log = readFileSync(INSTALL_LOG, 'utf8');
  } catch {
    return undefined;
  }
  const last = log.trimEnd().split('\n').pop() ?? '';
  const m = /^exit (\d+)$/.exec(last.trim());
  return m ? Number(m[1]) : undefined;
}

export async function launchChromium(waitMs = 45_000): Promise<Browser> {
  const executablePath = await waitForChromium(waitMs);
  return chromium.launch({ executablePath, args: ARGS, timeout: 30_000 });
}
