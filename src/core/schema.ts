/**
 * JSON Schema validation of fleet.yaml and deploy plans (schemas/, draft 2020-12, applied
 * with ajv), with ajv's errors turned into messages a person can act on.
 */
import { Ajv2020, type ErrorObject, type AnySchema } from 'ajv/dist/2020.js';
import { closest, distance } from 'fastest-levenshtein';
import commonSchema from '../../schemas/common.schema.json' with { type: 'json' };
import fleetSchema from '../../schemas/fleet.schema.json' with { type: 'json' };
import planSchema from '../../schemas/deployplan.schema.json' with { type: 'json' };
import type { Diagnostic } from './diagnostics.js';
import type { PathSegment, YamlDocument } from './yaml-source.js';

export const SCHEMA_IDS = {
  Fleet: fleetSchema.$id,
  DeployPlan: planSchema.$id,
} as const;

export type Kind = keyof typeof SCHEMA_IDS;

const ajv = new Ajv2020({ allErrors: true, strict: true, strictRequired: false, allowUnionTypes: true, verbose: true });
ajv.addSchema(commonSchema as AnySchema);
ajv.addSchema(planSchema as AnySchema);
ajv.addSchema(fleetSchema as AnySchema);

const validators = {
  Fleet: ajv.getSchema(SCHEMA_IDS.Fleet)!,
  DeployPlan: ajv.getSchema(SCHEMA_IDS.DeployPlan)!,
};

/** Validates a document (or a part of it, for inline plans) and returns all errors, located. */
export function validateAgainstSchema(
  kind: Kind,
  doc: YamlDocument,
  value: unknown = doc.value,
  basePath: readonly PathSegment[] = [],
  schemaRef?: string,
): Diagnostic[] {
  const validate = schemaRef ? ajv.getSchema(schemaRef)! : validators[kind];
  if (validate(value)) return [];
  const all = validate.errors ?? [];
  // Never fewer than one: a document the schema refuses must not load as valid.
  const errors = relevantErrors(all);
  if (errors.length === 0 && all[0]) errors.push(all[0]);
  // A file of 90,000 unknown keys is 90,000 errors; each is located by a search of its
  // mapping. Say the first ones, and how many more there are.
  const shown = errors.slice(0, MAX_SCHEMA_ERRORS).map((e) => toDiagnostic(e, doc, value, basePath));
  if (errors.length > MAX_SCHEMA_ERRORS) {
    // Where the first of those not shown is.
    const next = toDiagnostic(errors[MAX_SCHEMA_ERRORS]!, doc, value, basePath);
    shown.push({ ...next, message: `and ${errors.length - MAX_SCHEMA_ERRORS} more schema errors in this document`, hint: undefined });
  }
  return shown;
}

/** Schema errors reported per document; the rest are counted. */
export const MAX_SCHEMA_ERRORS = 20;

/**
 * ajv reports every failed branch of a oneOf and the `if` of every if/then; a person wants
 * one message per problem. Keep the oneOf summary and drop what its branches said, unless
 * exactly one branch fits the value's shape — then that branch's errors are the useful ones.
 */
function relevantErrors(errors: ErrorObject[]): ErrorObject[] {
  const dropExact = new Set<ErrorObject>();
  for (const [e, branches] of oneOfBranches(errors)) {
    // A branch "fits the shape" when it did not fail on type at the oneOf's own path.
    const fitting = [...branches.values()].filter(
      (errs) => !errs.some((b) => b.instancePath === e.instancePath && (b.keyword === 'type' || b.keyword === 'required')),
    );
    if (fitting.length === 1) {
      dropExact.add(e); // drop the summary, keep the fitting branch's errors, drop the others'
      for (const errs of branches.values()) if (errs !== fitting[0]) for (const b of errs) dropExact.add(b);
    } else {
      // No single branch fits: say which forms are allowed, and keep what names a property
      // ("unknown property fromEnvv — did you mean fromEnv?"), which is what a typo needs.
      for (const errs of branches.values()) for (const b of errs) if (b.keyword !== 'additionalProperties' && b.keyword !== 'unevaluatedProperties') dropExact.add(b);
    }
  }
  const seen = new Set<string>();
  return errors.filter((e) => {
    if (e.keyword === 'if' || dropExact.has(e)) return false;
    const key = `${e.instancePath}|${e.keyword}|${JSON.stringify(e.params)}`;
    if (seen.has(key)) return false;
    seen.add(key);
    return true;
  });
}

/**
 * Each oneOf error with the errors of its branches, by branch. A branch's errors lie under the
 * oneOf in the schema (schemaPath) and at or under its value (instancePath): the same oneOf
 * fails once per item of a list, and item 3's branches are not item 7's. Found per error by
 * walking up its instance path, not by comparing every error with every oneOf — 16,000 bad
 * smoke checks made 60,000 errors and took seconds.
 */
function oneOfBranches(errors: readonly ErrorObject[]): Map<ErrorObject, Map<string, ErrorObject[]>> {
  const out = new Map<ErrorObject, Map<string, ErrorObject[]>>();
  const byPlace = new Map<string, ErrorObject>();
  const schemaPaths = new Set<string>();
  for (const e of errors) {
    if (e.keyword !== 'oneOf') continue;
    byPlace.set(`${e.schemaPath}\0${e.instancePath}`, e);
    schemaPaths.add(e.schemaPath);
    out.set(e, new Map());
  }
  if (schemaPaths.size === 0) return out;
  for (const b of errors) {
    for (const sp of schemaPaths) {
      if (!b.schemaPath.startsWith(`${sp}/`)) continue;
      for (let ip = b.instancePath; ; ip = ip.slice(0, ip.lastIndexOf('/'))) {
        const e = byPlace.get(`${sp}\0${ip}`);
        if (e) {
          const branch = b.schemaPath.slice(sp.length + 1).split('/')[0] ?? '';
          const branches = out.get(e)!;
          const list = branches.get(branch);
          if (list) list.push(b);
          else branches.set(branch, [b]);
          break;
        }
        if (ip === '') break;
      }
    }
  }
  return out;
}

function toDiagnostic(e: ErrorObject, doc: YamlDocument, root: unknown, basePath: readonly PathSegment[]): Diagnostic {
  const path = [...basePath, ...pointerToPath(e.instancePath, root)];
  const where = describePath(path);
  let message: string;
  let hint: string | undefined;
  let locatePath = path;
  let locateKey = false;
  const params = e.params as Record<string, unknown>;

  switch (e.keyword) {
    case 'required': {
      const missing = String(params.missingProperty);
      message = `${where}: missing required property "${missing}"`;
      hint = propertyHint(e.parentSchema, missing);
      break;
    }
    case 'additionalProperties':
    case 'unevaluatedProperties': {
      const extra = String(params.additionalProperty ?? params.unevaluatedProperty);
      message = `${where}: unknown property "${extra}"`;
      const known = knownProperties(e.parentSchema);
      const guess = known.length ? closest(extra, known) : undefined;
      hint = guess && similar(extra, guess) ? `did you mean "${guess}"?` : known.length ? `allowed here: ${known.join(', ')}` : undefined;
      locatePath = [...path, extra];
      locateKey = true;
      break;
    }
    case 'enum': {
      const allowed = (params.allowedValues as unknown[]).map(String);
      const actual = valueAt(root, pointerToPath(e.instancePath, root));
      message = `${where}: ${shown(actual)} is not one of ${allowed.join(', ')}`;
      const guess = typeof actual === 'string' ? closest(actual, allowed) : undefined;
      hint = guess && similar(String(actual), guess) ? `did you mean "${guess}"?` : undefined;
      break;
    }
    case 'const':
      message = `${where}: must be ${JSON.stringify(params.allowedValue)}`;
      break;
    case 'type': {
      const actual = valueAt(root, pointerToPath(e.instancePath, root));
      message = `${where}: must be ${String(params.type).split(',').join(' or ')}, not ${describeValue(actual)}`;
      break;
    }
    case 'pattern': {
      const actual = valueAt(root, pointerToPath(e.instancePath, root));
      const description = (e.parentSchema as { description?: string } | undefined)?.description;
      message = `${where}: ${shown(actual)} is not valid${description ? ` (${lowerFirst(description)})` : ` (must match ${String(params.pattern)})`}`;
      break;
    }
    case 'oneOf': {
      const titles = ((e.schema as { title?: string }[] | undefined) ?? []).map((s) => s.title).filter(Boolean);
      message = `${where}: must be ${titles.length ? titles.join('; or ') : 'exactly one of the allowed forms'}`;
      break;
    }
    case 'minimum':
    case 'maximum':
    case 'exclusiveMinimum':
    case 'exclusiveMaximum':
    case 'minItems':
    case 'maxItems':
    case 'minLength':
      message = `${where}: ${e.message ?? 'is out of range'}`;
      break;
    case 'propertyNames':
      message = `${where}: property name "${String(params.propertyName)}" is not valid`;
      break;
    default:
      message = `${where}: ${e.message ?? 'is not valid'}`;
  }
  const p = doc.locate(locatePath, { key: locateKey });
  return { severity: 'error', code: 'SchemaViolation', file: doc.file, line: p.line, col: p.col, message, hint };
}

function pointerToPath(pointer: string, root: unknown): PathSegment[] {
  if (!pointer) return [];
  const segments: PathSegment[] = [];
  let cursor: unknown = root;
  for (const raw of pointer.slice(1).split('/')) {
    const seg = raw.replace(/~1/g, '/').replace(/~0/g, '~');
    if (Array.isArray(cursor)) {
      segments.push(Number(seg));
      cursor = cursor[Number(seg)];
    } else {
      segments.push(seg);
      cursor = cursor && typeof cursor === 'object' ? (cursor as Record<string, unknown>)[seg] : undefined;
    }
  }
  return segments;
}

function valueAt(root: unknown, path: PathSegment[]): unknown {
  let cursor = root;
  for (const seg of path) cursor = cursor && typeof cursor === 'object' ? (cursor as Record<string | number, unknown>)[seg] : undefined;
  return cursor;
}

/** spec.instances[2].smoke[0].http */
export function describePath(path: readonly PathSegment[]): string {
  if (path.length === 0) return '(document)';
  return path.map((s, i) => (typeof s === 'number' ? `[${s}]` : i === 0 ? s : `.${s}`)).join('');
}

/** A value as a message quotes it: JSON, cut to 60 characters ("x"×300,000 is a value too). */
function shown(value: unknown): string {
  const json = JSON.stringify(value) ?? String(value);
  return json.length > 60 ? `${json.slice(0, 57)}…` : json;
}

function describeValue(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'a list';
  if (typeof value === 'object') return 'a mapping';
  return `${typeof value} ${shown(value)}`;
}

/** Properties a (sub)schema allows, following allOf and $ref, for "did you mean". */
function knownProperties(schema: unknown, depth = 0): string[] {
  if (!schema || typeof schema !== 'object' || depth > 5) return [];
  const s = schema as { properties?: Record<string, unknown>; allOf?: unknown[]; $ref?: string };
  const names = new Set(Object.keys(s.properties ?? {}));
  for (const sub of s.allOf ?? []) for (const n of knownProperties(sub, depth + 1)) names.add(n);
  if (s.$ref) {
    const ref = s.$ref.startsWith('#') ? `${fleetSchema.$id}${s.$ref}` : new URL(s.$ref, fleetSchema.$id).href;
    for (const n of knownProperties(ajv.getSchema(ref)?.schema, depth + 1)) names.add(n);
  }
  return [...names].sort();
}

function propertyHint(parentSchema: unknown, property: string): string | undefined {
  const props = (parentSchema as { properties?: Record<string, { description?: string }> } | undefined)?.properties;
  const description = props?.[property]?.description;
  return description ? `${property}: ${lowerFirst(description)}` : undefined;
}

function similar(a: string, b: string): boolean {
  // closest() always answers; only suggest when the two are plausibly the same word.
  return distance(a.toLowerCase(), b.toLowerCase()) <= Math.max(2, Math.floor(b.length / 3));
}

function lowerFirst(s: string): string {
  return s.charAt(0).toLowerCase() + s.slice(1);
}
