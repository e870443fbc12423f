/**
 * Open-loop HTTP load for canary tests: a GET every intervalMs on a new connection (so the
 * switch draws a colour for each), until stop() — at most maxRequests, each bounded by 10 s.
 * Answers are tallied: 200s by body, the flow's own errors (flowError says which), and every
 * other outcome as a failure the switching caused.
 */
import http from 'node:http';

export interface Tally {
  ok: Record<string, number>;
  flowErrors: number;
  switchFailures: Record<string, number>;
  sent: number;
}

export function tallyLoad(port: number, path: string, intervalMs: number, maxRequests: number, flowError: (status: number, body: string) => boolean = () => false) {
  const tally: Tally = { ok: {}, flowErrors: 0, switchFailures: {}, sent: 0 };
  const pending = new Set<Promise<void>>();
  const fail = (why: string) => void (tally.switchFailures[why] = (tally.switchFailures[why] ?? 0) + 1);
  const fire = () => {
    tally.sent += 1;
    const p = new Promise<void>((resolve) => {
      const req = http.get({ host: '127.0.0.1', port, path, agent: false, timeout: 10_000 }, (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (body += c));
        res.on('end', () => {
          if (res.statusCode === 200) tally.ok[body] = (tally.ok[body] ?? 0) + 1;
          else if (flowError(res.statusCode ?? 0, body)) tally.flowErrors += 1;
          else fail(`HTTP ${res.statusCode} ${body.slice(0, 60)}`);
          resolve();
        });
        res.on('error', (err) => (fail(err.message), resolve()));
      });
      req.on('timeout', () => req.destroy(new Error('timeout')));
      req.on('error', (err: NodeJS.ErrnoException) => (fail(err.code ?? err.message), resolve()));
    });
    pending.add(p);
    void p.then(() => pending.delete(p));
  };
  const timer = setInterval(() => {
    if (tally.sent < maxRequests) fire();
  }, intervalMs);
  return {
    tally,
    async stop(): Promise<Tally> {
      clearInterval(timer);
      await Promise.all([...pending]);
      return tally;
    },
  };
}
