/**
 * A canary's extra check (analysis.prometheus): one instant query against a Prometheus
 * server's HTTP API (GET /api/v1/query). The answer must be a single number — a scalar, or a
 * vector of exactly one sample; anything else is an error that says what came back. Bounded:
 * 5 s, 1 MiB of answer. The URL may carry credentials; errors name only its origin.
 */
const TIMEOUT_MS = 5_000;
const MAX_BYTES = 1024 * 1024;

export async function queryPrometheus(url: string, query: string): Promise<number> {
  const base = new URL(url);
  const where = `${base.protocol}//${base.host}`;
  const target = new URL(`${base.pathname.replace(/\/$/, '')}/api/v1/query`, base);
  target.searchParams.set('query', query);
  const headers: Record<string, string> = { accept: 'application/json' };
  if (base.username) {
    headers.authorization = `Basic ${Buffer.from(`${decodeURIComponent(base.username)}:${decodeURIComponent(base.password)}`).toString('base64')}`;
    target.username = '';
    target.password = '';
  }
  let res: Response;
  try {
    res = await fetch(target, { headers, signal: AbortSignal.timeout(TIMEOUT_MS) });
  } catch (err) {
    throw new Error(`prometheus ${where}: ${(err as Error).name === 'TimeoutError' ? `no answer within ${TIMEOUT_MS} ms` : (err as Error).message}`);
  }
  const text = await res.text();
  if (text.length > MAX_BYTES) throw new Error(`prometheus ${where}: the answer is over ${MAX_BYTES} bytes`);
  if (!res.ok) throw new Error(`prometheus ${where}: HTTP ${res.status}`);
  let body: { status?: string; error?: string; data?: { resultType?: string; result?: unknown } };
  try {
    body = JSON.parse(text) as typeof body;
  } catch {
    throw new Error(`prometheus ${where}: the answer is not JSON`);
  }
  if (body.status !== 'success') throw new Error(`prometheus ${where}: ${body.error ?? 'the query failed'}`);
  const { resultType, result } = body.data ?? {};
  let value: unknown;
  if (resultType === 'scalar' && Array.isArray(result)) value = result[1];
  else if (resultType === 'vector' && Array.isArray(result)) {
    if (result.length !== 1) throw new Error(`prometheus ${where}: the query gives ${result.length} series; the check needs exactly one number`);
    value = (result[0] as { value?: unknown[] }).value?.[1];
  } else throw new Error(`prometheus ${where}: the query gives a ${resultType ?? 'result of no type'}; the check needs a scalar or one sample`);
  const n = Number(value);
  if (typeof value !== 'string' || !Number.isFinite(n)) throw new Error(`prometheus ${where}: the value ${JSON.stringify(value)} is not a number`);
  return n;
}
