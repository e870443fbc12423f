/**
 * Serves the app on a socket (@hono/node-server on node:http), with the server's own timeouts
 * set for a port anyone may reach: request headers must arrive within 10 s (slowloris), a
 * whole request within 30 s, and the server checks both every second rather than every 30 s.
 * Responses are not timed — an event stream lasts as long as its page is open; what a
 * response may hold is bounded in the app (see SERVER_LIMITS).
 */
import type { AddressInfo } from 'node:net';
import { serve } from '@hono/node-server';

export interface ServerTimeouts {
  /** Until the request's headers are in. */
  headersTimeoutMs: number;
  /** Until the whole request (headers and body) is in; the webhook cuts its body sooner. */
  requestTimeoutMs: number;
  /** How often the two above are checked. */
  checkIntervalMs: number;
  /** An idle keep-alive connection is closed after this. */
  keepAliveTimeoutMs: number;
}

export const SERVER_TIMEOUTS: ServerTimeouts = { headersTimeoutMs: 10_000, requestTimeoutMs: 30_000, checkIntervalMs: 1_000, keepAliveTimeoutMs: 5_000 };

export interface Listening {
  port: number;
  /** Stops accepting, closes every open connection (event streams would hold close() for ever) and calls back. */
  close(cb: () => void): void;
}

export function listen(fetch: (req: Request, env: unknown) => Response | Promise<Response>, hostname: string, port: number, timeouts: Partial<ServerTimeouts> = {}): Promise<Listening> {
  const t = { ...SERVER_TIMEOUTS, ...timeouts };
  return new Promise((resolve, reject) => {
    const server = serve(
      {
        fetch,
        hostname,
        port,
        serverOptions: { headersTimeout: t.headersTimeoutMs, requestTimeout: t.requestTimeoutMs, connectionsCheckingInterval: t.checkIntervalMs, keepAliveTimeout: t.keepAliveTimeoutMs },
      },
      (info: AddressInfo) =>
        resolve({
          port: info.port,
          close: (cb) => {
            server.close(() => cb());
            (server as { closeAllConnections?: () => void }).closeAllConnections?.();
          },
        }),
    );
    server.once('error', reject);
  });
}
