/**
 * PostgreSQL migrations, numbered, applied in order inside one transaction under an advisory
 * lock (see postgres/migrate.ts). They are TypeScript constants rather than .sql files because the
 * package ships dist/ and not src/: tsc would not copy .sql files, and these must travel with
 * the code that reads the tables. Never edit a released migration; add the next number.
 */
export interface Migration {
  version: number;
  name: string;
  sql: string;
}

export const MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    name: 'rollouts, journal, audit, revisions',
    sql: `
CREATE TABLE tower_rollouts (
  id          text PRIMARY KEY,
  -- insertion order: breaks ties between rollouts started in the same millisecond
  seq         bigserial NOT NULL UNIQUE,
  fleet       text NOT NULL,
  revision    text,
  author      text,
  message     text,
  started_at  timestamptz NOT NULL,
  finished_at timestamptz,
  outcome     text NOT NULL CHECK (outcome IN ('running', 'succeeded', 'failed', 'rolled-back', 'superseded', 'interrupted', 'invalid')),
  error       text,
  plan        jsonb,
  instances   jsonb NOT NULL DEFAULT '{}'::jsonb CHECK (jsonb_typeof(instances) = 'object')
);
CREATE INDEX tower_rollouts_fleet_started ON tower_rollouts (fleet, started_at DESC, seq DESC);
CREATE INDEX tower_rollouts_running ON tower_rollouts (fleet) WHERE outcome = 'running';

-- The rollout journal: one row per instance of a running rollout, upserted before each step.
CREATE TABLE tower_journal (
  rollout_id text NOT NULL REFERENCES tower_rollouts (id) ON DELETE CASCADE,
  instance   text NOT NULL,
  state      jsonb NOT NULL,
  updated_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (rollout_id, instance)
);

CREATE TABLE tower_audit (
  id       bigserial PRIMARY KEY,
  fleet    text NOT NULL,
  at       timestamptz NOT NULL,
  actor    text NOT NULL,
  action   text NOT NULL,
  revision text,
  detail   jsonb
);
CREATE INDEX tower_audit_fleet_at ON tower_audit (fleet, at DESC, id DESC);

-- Attempted and applied revisions, kept apart (Flux's lastAttempted/lastApplied).
CREATE TABLE tower_revisions (
  fleet              text PRIMARY KEY,
  attempted_revision text,
  attempted_at       timestamptz,
  attempted_outcome  text,
  attempted_error    text,
  applied_revision   text,
  applied_at         timestamptz,
  updated_at         timestamptz NOT NULL DEFAULT now()
);
`,
  },
];
