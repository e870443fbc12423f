/**
 * The baseline of bench/cli: a Node process that does nothing but parse a fleet repository's
 * files — YAML.parse of fleet.yaml (the same yaml library Tower uses), then readFileSync +
 * JSON.parse of every flow file it lists. What any tool reading these files has to pay.
 *
 *   node dist/bench/helpers/bare-parse.js DIR
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import YAML from 'yaml';

const dir = process.argv[2] ?? '.';
const fleet = YAML.parse(readFileSync(join(dir, 'fleet.yaml'), 'utf8')) as { spec?: { instances?: { flows?: string[] }[] } };
let nodes = 0;
for (const instance of fleet.spec?.instances ?? []) {
  for (const file of instance.flows ?? []) nodes += (JSON.parse(readFileSync(join(dir, file), 'utf8')) as unknown[]).length;
}
if (process.argv.includes('--count')) process.stdout.write(`${nodes}\n`);
