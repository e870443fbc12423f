/**
 * The router process: `node dist/src/switch-router/main.js --instance NAME --listen-port N --state-file F`.
 * Started detached by the built-in switch adapter, so it outlives the reconciler. It resumes
 * the route persisted in the state file, records its control port and token there (0600),
 * and on SIGTERM stops accepting, lets requests in flight finish (up to --grace-ms), and exits.
 *
 * Exit codes: 0 stopped, 2 bad arguments, 3 listen port already in use, 1 anything else.
 */
import { parseArgs } from 'node:util';
import { readRecord, writeRecord, type RouterRecord } from './record.js';
import { startRouter } from './router.js';

function say(line: string): void {
  process.stdout.write(`${new Date().toISOString()} ${line}\n`);
}

function fail(code: number, message: string): never {
  process.stderr.write(`${new Date().toISOString()} tower switch: ${message}\n`);
  process.exit(code);
}

function positiveInt(name: string, value: string | undefined, fallback?: number): number {
  if (value === undefined && fallback !== undefined) return fallback;
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0) fail(2, `--${name} must be a non-negative integer, got ${JSON.stringify(value)}`);
  return n;
}

function parse() {
  try {
    return parseArgs({
      options: {
        instance: { type: 'string' },
        'listen-port': { type: 'string' },
        'state-file': { type: 'string' },
        host: { type: 'string', default: '127.0.0.1' },
        'idle-timeout-ms': { type: 'string' },
        'grace-ms': { type: 'string' },
      },
      strict: true,
    }).values;
  } catch (err) {
    return fail(2, (err as Error).message);
  }
}

async function main(): Promise<void> {
  const values = parse();
  const instance = values.instance;
  const stateFile = values['state-file'];
  if (!instance || !stateFile) fail(2, '--instance and --state-file are required');
  const listenPort = positiveInt('listen-port', values['listen-port']);
  const idleTimeoutMs = positiveInt('idle-timeout-ms', values['idle-timeout-ms'], 5 * 60_000);
  const graceMs = positiveInt('grace-ms', values['grace-ms'], 10_000);

  // A restarted router resumes where the last one was routing.
  const previous = readRecord(stateFile);
  const resumed = previous?.instance === instance ? previous.active : undefined;
  const resumedSplit = previous?.instance === instance ? previous.split : undefined;
  let record: RouterRecord | undefined;

  const router = await startRouter({
    instance, listenPort, host: values.host, idleTimeoutMs, active: resumed, log: say,
    ...(resumedSplit ? { split: resumedSplit } : {}),
    // Persist first: a route the file does not hold would be lost by a restart.
    onRoute: (active) => {
      if (record) writeRecord(stateFile, (record = { ...record, active, split: undefined }));
    },
    onSplit: (split) => {
      if (record) writeRecord(stateFile, (record = { ...record, split }));
    },
  }).catch((err: NodeJS.ErrnoException) => {
    if (err.code === 'EADDRINUSE') fail(3, `${values.host}:${listenPort} is already in use (instance ${instance})`);
    return fail(1, `cannot start the switch for instance ${instance}: ${err.message}`);
  });
  record = {
    instance, pid: process.pid, listenPort: router.listenPort, controlPort: router.controlPort,
    token: router.token, active: resumed, ...(router.state().split ? { split: router.state().split } : {}), startedAt: new Date().toISOString(),
  };
  writeRecord(stateFile, record);
  say(`instance ${instance}: serving ${values.host}:${router.listenPort}, control on 127.0.0.1:${router.controlPort}`
    + (resumed ? `, resumed route -> ${resumed.color} (port ${resumed.port})` : ', no route yet (503)'));

  let stopping = false;
  const stop = (signal: string): void => {
    if (stopping) return;
    stopping = true;
    say(`${signal}: no new connections; letting requests in flight finish (up to ${graceMs} ms)`);
    router.close(graceMs).then(
      () => process.exit(0),
      (err: Error) => fail(1, `close failed: ${err.message}`),
    );
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
}

main().catch((err: Error) => fail(1, err.stack ?? err.message));
