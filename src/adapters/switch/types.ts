/**
 * The traffic switch: what serves an instance's stable address (fleet.yaml `port`) and
 * forwards to the active colour. It lives outside the reconciler's process, so requests
 * keep flowing when `tower apply` exits or the daemon is killed. The interface is the
 * engine's (src/engine/ports.ts): Tower ships a built-in switch (a small router process)
 * and an nginx one.
 */
export type { DrainResult, SwitchStatus, TrafficSwitch, Upstream, WeightedUpstream } from '../../engine/ports.js';
