/**
 * The tower command line. Commands, options and exit codes are a public contract:
 * other tools (CI jobs, scripts) call them.
 *
 * This module loads only commander: each command's module (and with it the engine, pino,
 * octokit, dockerode, …) is imported when that command runs, so `tower --version`,
 * `tower --help` and `tower validate` do not pay for what `tower run` needs.
 */
import { Command, CommanderError, InvalidArgumentError, Option } from 'commander';
import { processIo, type Io } from './commands/io.js';
import { VERSION } from './paths.js';

export async function main(argv: readonly string[], io: Io = processIo()): Promise<number> {
  let exitCode = 0;
  /**
   * Runs a command's body. A directory that is no fleet repository at all (missing, a file,
   * no fleet.yaml) is said in one line, with the command's exit code for invalid input.
   * Recognised by name: importing the class would load the repository code for --version.
   */
  const run = async (command: string, invalidExit: number, body: () => number | Promise<number>): Promise<void> => {
    try {
      exitCode = await body();
    } catch (err) {
      if (!(err instanceof Error) || err.name !== 'NotAFleetDirectory') throw err;
      io.stderr(`tower ${command}: ${err.message}\n`);
      exitCode = invalidExit;
    }
  };
  const program = new Command('tower')
    .description('RedForge Tower — GitOps for fleets of Node-RED instances.\nA Git repository (fleet.yaml, deploy plans, flow JSON) is the desired fleet; Tower validates it, plans the change and rolls it out blue-green, wave by wave.')
    .version(VERSION, '-V, --version', 'print the version')
    .helpOption('-h, --help', 'show help')
    .showHelpAfterError('(run with --help for usage)')
    .configureOutput({ writeOut: (s) => io.stdout(s), writeErr: (s) => io.stderr(s) })
    .exitOverride();

  program
    .command('validate')
    .description('Check a fleet repository: YAML, schemas, plans and every flow. Exit 0 valid, 1 invalid.')
    .argument('[dir]', 'the fleet repository (the directory holding fleet.yaml)', '.')
    .addOption(new Option('--format <format>', 'output format').choices(['text', 'json']).default('text'))
    .addHelpText('after', '\nErrors are printed as path:line:col: error: message.\n\nExample:\n  tower validate fleet-example')
    .action(async (dir: string, opts: { format: 'text' | 'json' }) => {
      await run('validate', 1, async () => (await import('./commands/validate.js')).validateCommand(dir, opts, io));
    });

  program
    .command('plan')
    .description('Show what would change: the waves, instances, tabs and nodes. Exit 0 no changes, 2 changes, 1 invalid input.')
    .argument('[dir]', 'the fleet repository', '.')
    .option('--observed <file>', 'the live fleet as JSON ({"instances": [{"name", "flows", "rev", "config"}]}); default: an empty fleet')
    .addOption(new Option('--format <format>', 'output format; markdown is what a pull-request comment carries').choices(['text', 'json', 'markdown']).default('text'))
    .addOption(new Option('--github-pr <number>', 'also post the plan (Markdown) as the sticky comment of this pull request, or update it').argParser(positiveInt))
    .option('--github-repo <owner/name>', 'the repository of the pull request (default: $GITHUB_REPOSITORY)')
    .option('--github-api-url <url>', 'the GitHub API (default: $GITHUB_API_URL, else https://api.github.com; GitHub Enterprise Server: https://HOST/api/v3)')
    .addHelpText(
      'after',
      '\nWith --github-pr, the token comes from GITHUB_TOKEN (it needs pull-requests: write). Tower finds its\n' +
        'comment again by a hidden marker and updates it (a long plan is split over several comments).\n' +
        'The exit code stays the plan\'s: 0 no changes, 2 changes, 1 invalid input — and 1 if the comment\n' +
        'could not be posted, with the reason on stderr.\n' +
        '\nExamples:\n  tower plan fleet-example\n  tower plan fleet-example --format json | jq ".waves"\n  tower plan . --observed live.json --format markdown > plan.md\n  GITHUB_TOKEN=… tower plan . --github-pr 7 --github-repo redforge/fleet',
    )
    .action(async (dir: string, opts: { observed?: string; format: 'text' | 'json' | 'markdown'; githubPr?: number; githubRepo?: string; githubApiUrl?: string }) => {
      const { githubPr, ...rest } = opts;
      await run('plan', 1, async () => {
        const { planCommand, planToPullRequest } = await import('./commands/plan.js');
        return githubPr === undefined ? planCommand(dir, rest, io) : planToPullRequest(dir, { ...rest, githubPr }, io);
      });
    });

  const stateDirOption = () => new Option('--state-dir <dir>', 'where Tower keeps what it manages on this machine').env('TOWER_STATE_DIR').default('.tower');

  program
    .command('apply')
    .description('Make the live fleet match DIR, once: roll the plan out blue-green, wave by wave. Exit 0 converged, 1 failed and rolled back, 2 invalid input, 3 the state directory is in use (by the daemon, or another apply or destroy).')
    .argument('[dir]', 'the fleet repository', '.')
    .addOption(stateDirOption())
    .option('--dry-run', 'show the plan against what runs, change nothing')
    .addHelpText('after', '\nEnvironment: MQTT_URL (the fleet broker, mqtt(s)://[user:password@]host:port; default: an embedded mosquitto when the fleet uses MQTT) with MQTT_CA_FILE, MQTT_CERT_FILE, MQTT_KEY_FILE, MQTT_REJECT_UNAUTHORIZED for mqtts, DOCKER_HOST, and the variables fleet.yaml references with fromEnv.\n\nExamples:\n  tower apply fleet-example\n  tower apply fleet-example --dry-run')
    .action(async (dir: string, opts: { stateDir: string; dryRun?: boolean }) => {
      await run('apply', 2, async () => (await import('./commands/apply.js')).applyCommand(dir, opts, io));
    });

  program
    .command('status')
    .description('What runs: instance, colour, port, rev, health. Exit 0 when every instance is healthy.')
    .addOption(stateDirOption())
    .addOption(new Option('--format <format>', 'output format').choices(['text', 'json']).default('text'))
    .action(async (opts: { stateDir: string; format: 'text' | 'json' }) => {
      exitCode = await (await import('./commands/status.js')).statusCommand(opts, io);
    });

  program
    .command('logs')
    .description('Show the Node-RED log of an instance — of the colour that serves it, or of --color — with secrets redacted. Exit 0 shown, 1 the instance or colour does not exist (or its log cannot be read).')
    .argument('<instance>', 'the instance, as fleet.yaml names it')
    .addOption(new Option('--color <color>', 'the colour to show (default: the one the switch routes to)').choices(['blue', 'green']))
    .option('-f, --follow', 'then print each new line, until Ctrl-C or until the colour stops')
    .addOption(new Option('-n, --lines <n>', 'how many of the last lines to show (1 to 10,000)').default(100).argParser(lineCount))
    .addOption(new Option('--replica <k>', 'with replicas: N, the replica to show, 1 to N (default 1)').argParser(replicaIndex))
    .addOption(stateDirOption())
    .addHelpText(
      'after',
      '\nBoth runtimes: node-red.log of a process colour, the container log (stdout and stderr) of a docker one.\n' +
        'Redacted in every line: the values of the env variables fleet.yaml gives by reference (fromEnv, fromFile)\n' +
        'and of those whose names look secret (…KEY, …TOKEN, …PASSWORD, …), node credentials (the broker login too),\n' +
        'the admin password and credentialSecret of the state directory, and passwords in URLs. Read from the state\n' +
        'directory and the runtime: no fleet repository is needed, and it works while the daemon runs.\n' +
        '\nExamples:\n  tower logs ingest\n  tower logs ingest --lines 20 --color green\n  tower logs ingest -f --state-dir /var/lib/tower',
    )
    .action(async (instance: string, opts: { stateDir: string; color?: 'blue' | 'green'; follow?: boolean; lines: number; replica?: number }) => {
      exitCode = await (await import('./commands/logs.js')).logsCommand(instance, opts, io);
    });

  program
    .command('history')
    .description('The fleet\'s rollouts, newest first: outcome, when, how long, who (commit author, and what started it) and what (revision, message), with each instance\'s phases. Exit 0, 1 the store cannot be read.')
    .addOption(new Option('--limit <n>', 'how many rollouts (1 to 200)').default(20).argParser(historyLimit))
    .addOption(new Option('--format <format>', 'output format; json gives the records as GET /api/v1/history does').choices(['text', 'json']).default('text'))
    .option('--fleet <name>', 'the fleet (default: the one the state directory manages)')
    .addOption(stateDirOption())
    .addHelpText(
      'after',
      '\nRead from the daemon\'s store — the embedded one in <state-dir>/store, or PostgreSQL when DATABASE_URL is set —\n' +
        'opened read-only, so it works while `tower run` runs. `tower apply` keeps no history: the daemon does.\n' +
        '\nExamples:\n  tower history\n  tower history --limit 5 --format json | jq ".history[0].outcome"\n  DATABASE_URL=postgres://tower@db/tower tower history --fleet redforge',
    )
    .action(async (opts: { stateDir: string; limit: number; format: 'text' | 'json'; fleet?: string }) => {
      exitCode = await (await import('./commands/history.js')).historyCommand(opts, io);
    });

  program
    .command('destroy')
    .description('Stop and remove every instance and switch this state directory manages. Exit 0 done, 2 DIR is no fleet repository, 3 the state directory is in use (by the daemon, or an apply).')
    .argument('[dir]', 'the fleet repository (only used when the state directory does not name its fleet)')
    .addOption(stateDirOption())
    .action(async (dir: string | undefined, opts: { stateDir: string }) => {
      await run('destroy', 2, async () => (await import('./commands/destroy.js')).destroyCommand(dir, opts, io));
    });

  program
    .command('run')
    .description('The daemon: keep the fleet equal to a branch of a Git repository (or a directory), forever. Serves the status API.')
    .option('--repo <url|dir>', 'a Git URL (https://, ssh://, git@host:repo, file://) or a directory with fleet.yaml, watched for edits [env TOWER_REPO]')
    .option('--branch <name>', 'the branch to follow (default: main) [env TOWER_BRANCH]')
    .option('--path <subdir>', 'the sub-directory of the repository holding fleet.yaml [env TOWER_PATH]')
    .option('--interval <duration>', 'how often to poll the repository, jittered ±10 % (default: 30s) [env TOWER_INTERVAL]')
    .option('--listen <host:port>', 'where the status page, API, metrics and webhook are served (default: 127.0.0.1:8080) [env TOWER_LISTEN]')
    .option('--state-dir <dir>', 'where Tower keeps what it manages on this machine (default: .tower) [env TOWER_STATE_DIR]')
    .option('--log-level <level>', 'fatal, error, warn, info, debug or trace (default: info) [env TOWER_LOG_LEVEL]')
    .option('--github-repo <owner/name>', 'report to this GitHub repository: commit statuses, check runs, plan comments on pull requests [env TOWER_GITHUB_REPO]')
    .option('--github-api-url <url>', 'the GitHub API; GitHub Enterprise Server: https://HOST/api/v3 [env GITHUB_API_URL]')
    .option('--leader <mode>', 'who acts among daemons of one fleet: kubernetes (a Lease tower-<fleet> in spec.kubernetes.namespace), redis (REDIS_URL), lock (one daemon per state dir) or auto: the Lease when the fleet runs on Kubernetes, else redis with REDIS_URL, else lock (default: auto) [env TOWER_LEADER]')
    .addHelpText(
      'after',
      '\nEnvironment:\n' +
        '  TOWER_WEBHOOK_SECRET   verify POST /hooks/github (GitHub push events trigger a pass at once)\n' +
        '  DATABASE_URL           PostgreSQL for history and journal (default: an embedded store in the state dir)\n' +
        '  REDIS_URL              leader lease between daemons, and shared Node-RED context (default: one daemon per state dir)\n' +
        '  TOWER_LEADER_LEASE     the duration of the Kubernetes Lease, whole seconds (default: 15s; renews every 2/15 of it, steps down after 2/3 without one)\n' +
        '  KUBECONFIG             the kubeconfig of spec.kubernetes.access: kubeconfig (default ~/.kube/config); in a pod, its service account\n' +
        '  MQTT_URL               the fleet broker, mqtt(s)://[user:password@]host:port (default: an embedded mosquitto when the fleet uses MQTT)\n' +
        '  MQTT_CA_FILE, MQTT_CERT_FILE, MQTT_KEY_FILE, MQTT_REJECT_UNAUTHORIZED   its TLS settings (mqtts://)\n' +
        '  GIT_TOKEN, GIT_TOKEN_FILE, GIT_SSH_KEY_FILE   credentials for the repository (never logged)\n' +
        '  GITHUB_TOKEN           with --github-repo: commit statuses and plan comments\n' +
        '  GITHUB_APP_ID, GITHUB_APP_PRIVATE_KEY(_FILE), GITHUB_APP_INSTALLATION_ID   a GitHub App: also check runs\n' +
        '  TOWER_PUBLIC_URL       the status page as people reach it (links in statuses)\n' +
        '\nSIGTERM finishes the current step (a rollout stops at its next safe point), then exits; SIGHUP triggers a pass.\n' +
        '\nExamples:\n  tower run --repo fleet-example\n  tower run --repo https://github.com/acme/fleet.git --branch main --path fleet --listen 0.0.0.0:8080',
    )
    .action(async (opts: { repo?: string; branch?: string; path?: string; interval?: string; listen?: string; stateDir?: string; logLevel?: string; githubRepo?: string; githubApiUrl?: string; leader?: string }) => {
      exitCode = await (await import('./commands/run.js')).runCommand(opts, io);
    });

  try {
    await program.parseAsync(argv, { from: 'user' });
  } catch (err) {
    if (err instanceof CommanderError) return err.exitCode;
    io.stderr(`tower: ${(err as Error).message}\n`);
    return 1;
  }
  return exitCode;
}

function positiveInt(value: string): number {
  if (!/^[1-9]\d*$/.test(value)) throw new InvalidArgumentError('expected a pull request number');
  return Number(value);
}

/** --lines: 1 to 10,000 (adapters/runtime/logs.ts MAX_LOG_LINES; not imported, so that --help loads nothing). */
function lineCount(value: string): number {
  if (!/^[1-9]\d*$/.test(value) || Number(value) > 10_000) throw new InvalidArgumentError('expected a number of lines from 1 to 10000');
  return Number(value);
}

/** --replica: 1 to 32, as fleet.yaml's replicas. */
function replicaIndex(value: string): number {
  if (!/^[1-9]\d*$/.test(value) || Number(value) > 32) throw new InvalidArgumentError('expected a replica from 1 to 32');
  return Number(value);
}

/** --limit of history: 1 to 200, as the API (commands/history.ts MAX_HISTORY). */
function historyLimit(value: string): number {
  if (!/^[1-9]\d*$/.test(value) || Number(value) > 200) throw new InvalidArgumentError('expected a number of rollouts from 1 to 200');
  return Number(value);
}
