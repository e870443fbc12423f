/**
 * The tower command line. Commands, options and exit codes are a public contract:
 * other tools (CI jobs, scripts) call them.
 */
import { Command, CommanderError, Option } from 'commander';
import { processIo, type Io } from './commands/io.js';
import { planCommand } from './commands/plan.js';
import { validateCommand } from './commands/validate.js';
import { applyCommand } from './commands/apply.js';
import { destroyCommand, statusCommand } from './commands/status.js';
import { VERSION } from './paths.js';

export async function main(argv: readonly string[], io: Io = processIo()): Promise<number> {
  let exitCode = 0;
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
    .action((dir: string, opts: { format: 'text' | 'json' }) => {
      exitCode = validateCommand(dir, opts, io);
    });

  program
    .command('plan')
    .description('Show what would change: the waves, instances, tabs and nodes. Exit 0 no changes, 2 changes, 1 invalid input.')
    .argument('[dir]', 'the fleet repository', '.')
    .option('--observed <file>', 'the live fleet as JSON ({"instances": [{"name", "flows", "rev", "config"}]}); default: an empty fleet')
    .addOption(new Option('--format <format>', 'output format; markdown is what a pull-request comment carries').choices(['text', 'json', 'markdown']).default('text'))
    .addHelpText('after', '\nExamples:\n  tower plan fleet-example\n  tower plan fleet-example --format json | jq ".waves"\n  tower plan . --observed live.json --format markdown > plan.md')
    .action((dir: string, opts: { observed?: string; format: 'text' | 'json' | 'markdown' }) => {
      exitCode = planCommand(dir, opts, io);
    });

  const stateDirOption = () => new Option('--state-dir <dir>', 'where Tower keeps what it manages on this machine').env('TOWER_STATE_DIR').default('.tower');

  program
    .command('apply')
    .description('Make the live fleet match DIR, once: roll the plan out blue-green, wave by wave. Exit 0 converged, 1 failed and rolled back, 2 invalid input.')
    .argument('[dir]', 'the fleet repository', '.')
    .addOption(stateDirOption())
    .option('--dry-run', 'show the plan against what runs, change nothing')
    .addHelpText('after', '\nEnvironment: MQTT_URL (the fleet broker; default: an embedded mosquitto when the fleet uses MQTT), DOCKER_HOST, and the variables fleet.yaml references with fromEnv.\n\nExamples:\n  tower apply fleet-example\n  tower apply fleet-example --dry-run')
    .action(async (dir: string, opts: { stateDir: string; dryRun?: boolean }) => {
      exitCode = await applyCommand(dir, opts, io);
    });

  program
    .command('status')
    .description('What runs: instance, colour, port, rev, health. Exit 0 when every instance is healthy.')
    .addOption(stateDirOption())
    .addOption(new Option('--format <format>', 'output format').choices(['text', 'json']).default('text'))
    .action(async (opts: { stateDir: string; format: 'text' | 'json' }) => {
      exitCode = await statusCommand(opts, io);
    });

  program
    .command('destroy')
    .description('Stop and remove every instance and switch this state directory manages.')
    .argument('[dir]', 'the fleet repository (only used when the state directory does not name its fleet)')
    .addOption(stateDirOption())
    .action(async (dir: string | undefined, opts: { stateDir: string }) => {
      exitCode = await destroyCommand(dir, opts, io);
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
