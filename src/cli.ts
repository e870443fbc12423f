/**
 * The tower command line. Commands, options and exit codes are a public contract:
 * other tools (CI jobs, scripts) call them.
 */
import { Command, CommanderError, Option } from 'commander';
import { processIo, type Io } from './commands/io.js';
import { planCommand } from './commands/plan.js';
import { validateCommand } from './commands/validate.js';
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

  try {
    await program.parseAsync(argv, { from: 'user' });
  } catch (err) {
    if (err instanceof CommanderError) return err.exitCode;
    io.stderr(`tower: ${(err as Error).message}\n`);
    return 1;
  }
  return exitCode;
}
