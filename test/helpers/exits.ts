/**
 * Waiting on a runtime driver's watch(): the exits a watcher collected, bounded in time, and
 * (docker driver) the log line that says its event stream is connected and the fleet listed.
 */
import type { ColorExit, RuntimeDriver } from '../../src/adapters/runtime/types.js';

/** Collects the driver's reports for the fleet into `exits`; returns the unsubscribe function. */
export function watchExits(driver: RuntimeDriver, fleet: string, exits: ColorExit[]): () => void {
  // Optional chaining: the engine's port may declare watch optional; both drivers have it.
  const stop = driver.watch?.(fleet, (exit) => exits.push(exit));
  if (!stop) throw new Error(`the ${driver.kind} driver cannot watch`);
  return stop;
}

export const sleep = (ms: number): Promise<void> => new Promise((done) => setTimeout(done, ms));

/** Polls (every 10 ms, until since + timeoutMs) until `exits` holds more than `count`; the next exit and how long after `since` it came. */
export async function nextExit(exits: ColorExit[], count: number, since: number, timeoutMs = 1_000): Promise<{ exit: ColorExit; ms: number }> {
  const deadline = since + timeoutMs;
  while (exits.length <= count) {
    if (Date.now() > deadline) throw new Error(`no exit reported within ${timeoutMs} ms (have ${JSON.stringify(exits)})`);
    await sleep(10);
  }
  return { exit: exits[count]!, ms: Date.now() - since };
}

/** Until the docker driver has logged `count` connections of its event stream (it logs once connected and listed). */
export async function watching(lines: string[], count = 1, timeoutMs = 5_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (lines.filter((l) => l.startsWith('docker: watching fleet ')).length < count) {
    if (Date.now() > deadline) throw new Error(`the watch did not connect: ${lines.join('\n')}`);
    await sleep(10);
  }
}
