/**
 * The rollout of one instance as a pure state machine: step(state, observation) returns the
 * next state and the actions the engine must carry out. The engine executes the actions in
 * order, stops at the first that fails, and reports what it completed; nothing here does I/O.
 *
 * Phases (names as on the status page): DRAIN → DEPLOY → VERIFY → RESUME → AUDIT → CLEANUP.
 * For a blue-green swap from `active` to `target`:
 *   DRAIN    clear the target slot: a colour still parked there (kept warm by an earlier
 *            rollout) is drained and removed. The active colour keeps serving.
 *   DEPLOY   start the target colour with the new flows on its own port. Its MQTT gate is
 *            closed and the switch does not send it anything yet.
 *   VERIFY   check the target directly: Node-RED's rev equals the desired rev, the HTTP smoke
 *            checks pass; then open its gate (its consumers join the shared subscriptions
 *            next to the active colour's — make before break) and run the MQTT smoke checks.
 *   RESUME   switch the stable address to the target (atomic), close the old colour's gate
 *            and wait until it has no request in flight: traffic resumes on the new colour.
 *   AUDIT    confirm through the stable address that the new colour serves the desired rev.
 *   CLEANUP  once the whole rollout has succeeded: stop the old colour, or keep it warm for an
 *            instant swap back. Until then it stays, so any wave can still be rolled back.
 * A canary (path canary) is a blue-green whose RESUME goes step by step: the switch sends
 * each step's weight of new connections to the target and the step's analysis judges what it
 * measured (actions split, analyse); the last step (100 %) ends in the route as blue-green's.
 * A failed analysis routes everything back, drains the canary and removes it.
 * A failure before the switch removes the target and leaves the active colour untouched; a
 * failure after it switches back. Cosmetic changes, first creations, swap-backs to a warm
 * colour and prunes take shorter paths through the same phases (skipped phases say so).
 */

export type Color = 'blue' | 'green';
export type Phase = 'DRAIN' | 'DEPLOY' | 'VERIFY' | 'RESUME' | 'AUDIT' | 'CLEANUP';
export const PHASES: readonly Phase[] = ['DRAIN', 'DEPLOY', 'VERIFY', 'RESUME', 'AUDIT', 'CLEANUP'];

/** How the instance gets to the desired state. */
export type RolloutPath =
  | 'blue-green' // new colour, verify, switch, drain the old one
  | 'swap' // the desired flows already run in the warm standby colour: verify it and switch back
  | 'in-place' // cosmetic change: a `nodes` deploy restarts nothing
  | 'recreate' // stop, then start (for instances that must never run twice)
  | 'create' // a new instance: start, verify, route
  | 'canary' // as blue-green, but traffic moves to the new colour step by step, each step analysed
  | 'ab' // an experiment: the new colour takes a fixed share for a while, then everything goes back (never promoted)
  | 'delete'; // prune: drain and remove

export type Outcome =
  | 'running'
  | 'awaiting-cleanup' // serving the new version; the old colour stays until the rollout ends
  | 'succeeded'
  | 'rolled-back'
  | 'failed'; // a rollback (or prune) step itself failed: needs attention, retried next pass

export type Action =
  | { type: 'ensureSwitch' }
  | { type: 'retire'; color: Color } // drain and remove whatever occupies this colour's slot
  | { type: 'start'; color: Color } // create and start with the desired flows; ready when it returns
  | { type: 'restart'; color: Color } // start a stopped colour again, with the flows it had
  | { type: 'stop'; color: Color }
  | { type: 'remove'; color: Color; graceMs?: number } // graceMs: at most this long for MQTT work it took to finish (default drainTimeout)
  | { type: 'park'; color: Color; until?: number } // keep warm, unrouted, until then (ms since the epoch; default: now + keepWarm)
  | { type: 'deployInPlace'; color: Color } // `nodes` deploy of the desired flows, with rev check
  | { type: 'restoreInPlace'; color: Color } // `nodes` deploy of the flows it ran before
  | { type: 'checkRev'; color: Color }
  | { type: 'smoke'; color: Color; kind: 'http' | 'mqtt' }
  | { type: 'openGate'; color: Color }
  | { type: 'closeGate'; color: Color }
  | { type: 'forgetReplicas'; color: Color; keys: string[] } // replicas gone (pods replaced): clear their gates and end their MQTT sessions
  | { type: 'route'; color: Color }
  | { type: 'split'; color: Color; weight: number } // the canary colour's share of new connections; the active colour keeps the rest
  | { type: 'analyse'; color: Color; step: number } // judge the canary over step `step` (an index into the instance's canary.steps); throws when it fails
  | { type: 'experiment'; color: Color } // strategy ab: watch both variants for the experiment's duration, then end it (it throws, with the numbers: the rollback takes the variant away)
  | { type: 'unroute' } // recreate only: nothing serves until the new colour is routed (the switch answers 502)
  | { type: 'drain'; color: Color }
  | { type: 'audit'; color: Color }
  | { type: 'release'; color: Color } // stop and remove now, or keep warm until keepWarm expires
  | { type: 'removeSwitch' }; // graceful: in-flight requests finish

export interface SwapState {
  instance: string;
  path: RolloutPath;
  phase: Phase;
  outcome: Outcome;
  /** The colour serving before the rollout (absent for a create). */
  active?: Color;
  /** The colour that serves once the rollout succeeds (for in-place and delete: the active one). */
  target: Color;
  /** Facts established by completed actions; rollback decisions depend on them. */
  targetStarted: boolean;
  targetGateOpen: boolean;
  switched: boolean;
  /** canary: the target has had a share of the traffic (a rollback routes it all back and drains it). */
  split?: boolean;
  /** canary: the steps this rollout runs (their index in the instance's canary.steps, and weight); a resumed canary starts where the switch is. */
  canarySteps?: { step: number; weight: number }[];
  /** The stable address answers 503 (recreate, between stop and start). */
  unrouted: boolean;
  activeGateClosed: boolean;
  activeStopped: boolean;
  switchCreated: boolean;
  /** A switch served the stable port before the rollout: a rollback leaves it (it was not this rollout's). */
  switchExisted?: boolean;
  /** Phases this path does not need, for the status page. */
  skipped: Phase[];
  error?: string;
  failedPhase?: Phase;
}

export type Observation =
  | { type: 'begin' }
  /** The last actions all completed. */
  | { type: 'completed' }
  /** An action failed; `completed` lists those that finished before it. */
  | { type: 'failed'; error: string; completed: Action[] }
  /** Every wave of the rollout has succeeded: clean up. */
  | { type: 'rollout-succeeded' }
  /** Roll this instance back because the rollout failed elsewhere (onFailure). */
  | { type: 'rollback'; reason: string };

export interface StepResult {
  next: SwapState;
  actions: Action[];
}

export function otherColor(color: Color): Color {
  return color === 'blue' ? 'green' : 'blue';
}

const SKIPPED: Record<RolloutPath, Phase[]> = {
  'blue-green': [],
  swap: ['DRAIN', 'DEPLOY'],
  'in-place': ['DRAIN', 'RESUME'],
  recreate: [],
  create: [],
  canary: [],
  ab: [],
  delete: ['DEPLOY', 'VERIFY', 'RESUME', 'AUDIT'],
};

/** A canary's steps, and whether its target runs already (a resumed canary): DRAIN and DEPLOY are then skipped. */
export interface CanaryPlan {
  steps: { step: number; weight: number }[];
  warm: boolean;
}

/** The state before the first step. For create, target is the first colour (blue). */
export function initialState(instance: string, path: RolloutPath, active: Color | undefined, target?: Color, switchExisted = false, canary?: CanaryPlan): SwapState {
  const t = target ?? (path === 'in-place' || path === 'delete' ? active! : active ? otherColor(active) : 'blue');
  const skipped = (path === 'canary' || path === 'ab') && canary?.warm ? SKIPPED.swap : SKIPPED[path];
  return {
    instance,
    path,
    phase: skipped.includes('DRAIN') && skipped.includes('DEPLOY') ? 'VERIFY' : firstPhase(path),
    outcome: 'running',
    ...(active ? { active } : {}),
    target: t,
    targetStarted: false,
    targetGateOpen: false,
    switched: false,
    unrouted: false,
    activeGateClosed: false,
    activeStopped: false,
    switchCreated: false,
    ...(switchExisted ? { switchExisted } : {}),
    ...(path === 'canary' || path === 'ab' ? { canarySteps: canary?.steps ?? [] } : {}),
    skipped,
  };
}

function firstPhase(path: RolloutPath): Phase {
  return path === 'swap' ? 'VERIFY' : path === 'in-place' ? 'DEPLOY' : 'DRAIN';
}

/** The actions of a phase, for a state entering it. */
function phaseActions(s: SwapState, phase: Phase): Action[] {
  return phasesOf(s)[phase] ?? [];
}

/** Per path, what each phase does; a phase a path does not list does nothing. */
function phasesOf(s: SwapState): Partial<Record<Phase, Action[]>> {
  const t = s.target;
  const a = s.active!;
  const start: Action[] = [{ type: 'start', color: t }];
  const verify: Action[] = [{ type: 'checkRev', color: t }, { type: 'smoke', color: t, kind: 'http' }, { type: 'openGate', color: t }, { type: 'smoke', color: t, kind: 'mqtt' }];
  const audit: Action[] = [{ type: 'audit', color: t }];
  const clearSlot: Action[] = [{ type: 'ensureSwitch' }, { type: 'retire', color: t }];
  switch (s.path) {
    case 'blue-green':
    case 'swap':
      return { DRAIN: clearSlot, DEPLOY: start, VERIFY: verify, RESUME: [{ type: 'route', color: t }, { type: 'closeGate', color: a }, { type: 'drain', color: a }], AUDIT: audit };
    case 'recreate':
      return {
        DRAIN: [...clearSlot, { type: 'closeGate', color: a }, { type: 'unroute' }, { type: 'drain', color: a }, { type: 'stop', color: a }],
        DEPLOY: start,
        VERIFY: verify,
        RESUME: [{ type: 'route', color: t }],
        AUDIT: audit,
      };
    case 'create':
      return { DRAIN: clearSlot, DEPLOY: start, VERIFY: verify, RESUME: [{ type: 'route', color: t }], AUDIT: audit };
    case 'canary': {
      const steps = (s.canarySteps ?? []).flatMap(({ step, weight }): Action[] => [{ type: 'split', color: t, weight }, { type: 'analyse', color: t, step }]);
      return { DRAIN: clearSlot, DEPLOY: start, VERIFY: verify, RESUME: [...steps, { type: 'route', color: t }, { type: 'closeGate', color: a }, { type: 'drain', color: a }], AUDIT: audit };
    }
    case 'ab': {
      const weight = s.canarySteps?.[0]?.weight ?? 50;
      return { DRAIN: clearSlot, DEPLOY: start, VERIFY: verify, RESUME: [{ type: 'split', color: t, weight }, { type: 'experiment', color: t }] };
    }
    case 'in-place':
      return { DEPLOY: [{ type: 'deployInPlace', color: t }], VERIFY: [{ type: 'checkRev', color: t }, { type: 'smoke', color: t, kind: 'http' }, { type: 'smoke', color: t, kind: 'mqtt' }], AUDIT: audit };
    case 'delete':
      return { DRAIN: [{ type: 'closeGate', color: t }, { type: 'removeSwitch' }], CLEANUP: [{ type: 'remove', color: 'blue' }, { type: 'remove', color: 'green' }] };
  }
}

function nextPhase(s: SwapState, phase: Phase): Phase | undefined {
  for (let i = PHASES.indexOf(phase) + 1; i < PHASES.length; i++) {
    const p = PHASES[i]!;
    if (!s.skipped.includes(p)) return p;
  }
  return undefined;
}

/** Facts that completed actions establish. */
function applyCompleted(s: SwapState, completed: readonly Action[]): SwapState {
  const next = { ...s };
  for (const a of completed) {
    if (a.type === 'ensureSwitch' && !s.switchExisted) next.switchCreated = true;
    if (a.type === 'start' && a.color === s.target) next.targetStarted = true;
    if (a.type === 'openGate' && a.color === s.target) next.targetGateOpen = true;
    if (a.type === 'route' && a.color === s.target) next.switched = true;
    if (a.type === 'split' && a.color === s.target) next.split = true;
    if (a.type === 'stop' && a.color === s.active) next.activeStopped = true;
    if (a.type === 'unroute') next.unrouted = true;
    if (a.type === 'closeGate' && a.color === s.active) next.activeGateClosed = true;
    if (a.type === 'deployInPlace') next.targetStarted = true; // the live flows changed
  }
  return next;
}

/** Undo what this rollout did to the instance, given what it has done so far. */
export function rollbackActions(s: SwapState): Action[] {
  const t = s.target;
  const a = s.active;
  switch (s.path) {
    case 'in-place':
      return s.targetStarted ? [{ type: 'restoreInPlace', color: t }] : [];
    case 'create': {
      const out: Action[] = [];
      if (s.targetGateOpen) out.push({ type: 'closeGate', color: t });
      if (s.switchCreated) out.push({ type: 'removeSwitch' });
      out.push({ type: 'remove', color: t });
      return out;
    }
    case 'delete':
      return [];
    case 'ab':
    case 'canary': {
      // Everything back to the active colour, the canary's requests finish, and it goes.
      const out: Action[] = [];
      if (a && (s.switched || s.split)) out.push({ type: 'route', color: a });
      if (a && s.activeGateClosed) out.push({ type: 'openGate', color: a });
      if (s.targetGateOpen || s.switched) out.push({ type: 'closeGate', color: t });
      if (s.switched || s.split) out.push({ type: 'drain', color: t });
      if (s.phase !== 'DRAIN' || s.targetStarted) out.push({ type: 'remove', color: t });
      return out;
    }
    case 'swap':
    case 'blue-green':
    case 'recreate': {
      const out: Action[] = [];
      if (a && s.activeStopped) out.push({ type: 'restart', color: a });
      if (a && (s.switched || s.unrouted)) out.push({ type: 'route', color: a });
      if (a && s.activeGateClosed) out.push({ type: 'openGate', color: a });
      if (s.targetGateOpen || s.switched) out.push({ type: 'closeGate', color: t });
      // A warm standby we swapped to was not started by us: park it again rather than remove it.
      // Nothing of the target exists before DEPLOY (a failed DRAIN leaves it as it was).
      if (s.path === 'swap') out.push({ type: 'park', color: t });
      else if (s.phase !== 'DRAIN' || s.targetStarted) out.push({ type: 'remove', color: t });
      return out;
    }
  }
}

export function step(state: SwapState, obs: Observation): StepResult {
  if (state.outcome === 'succeeded' || state.outcome === 'rolled-back' || state.outcome === 'failed') {
    return { next: state, actions: [] };
  }
  switch (obs.type) {
    case 'begin':
      return { next: state, actions: phaseActions(state, state.phase) };

    case 'completed': {
      // Rollback actions finished: the instance is back where it was.
      if (state.error !== undefined) return { next: { ...state, outcome: 'rolled-back' }, actions: [] };
      const s = applyCompleted(state, phaseActions(state, state.phase));
      if (state.phase === 'CLEANUP') {
        return { next: { ...s, outcome: 'succeeded' }, actions: [] };
      }
      const phase = nextPhase(s, state.phase);
      if (phase === undefined || phase === 'CLEANUP') {
        // Served by the new version; the old colour stays until the whole rollout succeeds.
        // A prune has nothing to keep: it cleans up at once.
        if (s.path === 'delete') return { next: { ...s, phase: 'CLEANUP' }, actions: phaseActions(s, 'CLEANUP') };
        return { next: { ...s, phase: 'CLEANUP', outcome: 'awaiting-cleanup' }, actions: [] };
      }
      return { next: { ...s, phase }, actions: phaseActions(s, phase) };
    }

    case 'failed': {
      if (state.error !== undefined) {
        // A rollback action failed: stop here, visibly; the next pass repairs from live state.
        return { next: { ...state, outcome: 'failed', error: `${state.error}; rolling back failed too: ${obs.error}` }, actions: [] };
      }
      const s = applyCompleted(state, obs.completed);
      if (state.path === 'delete') return { next: { ...s, outcome: 'failed', error: obs.error, failedPhase: state.phase }, actions: [] };
      if (state.phase === 'CLEANUP') {
        // The new version serves; only retiring the old colour failed. Not a reason to go back.
        return { next: { ...s, outcome: 'succeeded', error: `cleanup: ${obs.error}` }, actions: [] };
      }
      const actions = rollbackActions(s);
      return { next: { ...s, error: obs.error, failedPhase: state.phase }, actions };
    }

    case 'rollout-succeeded': {
      if (state.outcome !== 'awaiting-cleanup') return { next: state, actions: [] };
      const actions: Action[] = state.path === 'in-place' || state.path === 'create' || !state.active ? [] : [{ type: 'release', color: state.active }];
      if (state.path === 'recreate' && state.active) actions.splice(0, actions.length, { type: 'remove', color: state.active });
      return { next: { ...state, outcome: 'running' }, actions };
    }

    case 'rollback': {
      if (state.outcome !== 'awaiting-cleanup' && state.outcome !== 'running') return { next: state, actions: [] };
      return { next: { ...state, outcome: 'running', error: obs.reason, failedPhase: state.phase }, actions: rollbackActions(state) };
    }
  }
}

/** True when nothing more will happen to this instance in this rollout. */
export function isFinal(s: SwapState): boolean {
  return s.outcome === 'succeeded' || s.outcome === 'rolled-back' || s.outcome === 'failed';
}
