// The scaling policy (pure): one table of snapshot + state → desired quantity, rule and
// idleSince, plus the option checks.
import { describe, expect, it } from 'vitest';
import {
  decide,
  policyOptions,
  PolicyOptionsError,
  type QueueSnapshot,
  type ScalingRule,
  type ScalingState,
} from '../../src/autoscaler/policy.js';

const T = 1_700_000_000_000;
const OPTIONS = policyOptions({ idleTimeoutMs: 60_000, jobsPerWorker: 10 });
const empty: QueueSnapshot = { waiting: 0, prioritized: 0, active: 0, delayedDue: 0, at: T };

interface Case {
  name: string;
  snapshot: Partial<QueueSnapshot>;
  state: Partial<ScalingState>;
  desired: number;
  rule: ScalingRule;
  idleSince: number | null;
}

const cases: Case[] = [
  // Scaling up: linear, at least one, capped.
  { name: 'at zero, 1 waiting → 1', snapshot: { waiting: 1 }, state: { current: 0 }, desired: 1, rule: 'load', idleSince: null },
  { name: 'at zero, 10 waiting → 1 (exactly one worker’s share)', snapshot: { waiting: 10 }, state: { current: 0 }, desired: 1, rule: 'load', idleSince: null },
  { name: 'at zero, 11 waiting → 2', snapshot: { waiting: 11 }, state: { current: 0 }, desired: 2, rule: 'load', idleSince: null },
  { name: 'waiting + prioritized + delayed due add up: 5 + 5 + 5 → 2', snapshot: { waiting: 5, prioritized: 5, delayedDue: 5 }, state: { current: 0 }, desired: 2, rule: 'load', idleSince: null },
  { name: 'a delayed job due within the look-ahead is work → 1', snapshot: { delayedDue: 1 }, state: { current: 0 }, desired: 1, rule: 'load', idleSince: null },
  { name: '1,000 waiting with a ceiling of 1 → 1', snapshot: { waiting: 1_000 }, state: { current: 0, ceiling: 1 }, desired: 1, rule: 'ceiling', idleSince: null },
  { name: '35 waiting with a ceiling of 3 → 3', snapshot: { waiting: 35 }, state: { current: 1, ceiling: 3 }, desired: 3, rule: 'ceiling', idleSince: null },
  { name: 'a ceiling of 0 (no room in the budget) → 0 even with work', snapshot: { waiting: 3 }, state: { current: 0, ceiling: 0 }, desired: 0, rule: 'ceiling', idleSince: null },
  // Only active jobs: keep at least one, never scale down under them.
  { name: 'only active jobs, at 1 → 1', snapshot: { active: 2 }, state: { current: 1 }, desired: 1, rule: 'load', idleSince: null },
  { name: 'only active jobs, at 3 → keeps 3 (no scale-down while jobs run)', snapshot: { active: 1 }, state: { current: 3, ceiling: 5 }, desired: 3, rule: 'active-hold', idleSince: null },
  { name: 'active jobs and few waiting, at 3 → keeps 3', snapshot: { active: 1, waiting: 2 }, state: { current: 3, ceiling: 5 }, desired: 3, rule: 'active-hold', idleSince: null },
  { name: 'active jobs but above the ceiling → the ceiling wins', snapshot: { active: 4 }, state: { current: 4, ceiling: 2 }, desired: 2, rule: 'ceiling', idleSince: null },
  // Pending but nothing active: scale down to the load.
  { name: 'at 3, 5 waiting and nothing active → 1', snapshot: { waiting: 5 }, state: { current: 3, ceiling: 5 }, desired: 1, rule: 'load', idleSince: null },
  { name: 'busy again clears idleSince', snapshot: { waiting: 1 }, state: { current: 1, idleSince: T - 30_000 }, desired: 1, rule: 'load', idleSince: null },
  // Idle: keep until the timeout, then zero.
  { name: 'idle at 1, first seen → keeps 1, idle since now', snapshot: {}, state: { current: 1, idleSince: null }, desired: 1, rule: 'idle-wait', idleSince: T },
  { name: 'idle at 1 for 59.9 s → keeps 1', snapshot: {}, state: { current: 1, idleSince: T - 59_900 }, desired: 1, rule: 'idle-wait', idleSince: T - 59_900 },
  { name: 'idle at 1 for exactly 60 s → 0', snapshot: {}, state: { current: 1, idleSince: T - 60_000 }, desired: 0, rule: 'idle-timeout', idleSince: T - 60_000 },
  { name: 'idle at 2 for 5 min → 0', snapshot: {}, state: { current: 2, ceiling: 2, idleSince: T - 300_000 }, desired: 0, rule: 'idle-timeout', idleSince: T - 300_000 },
  { name: 'idle at 0 → stays 0', snapshot: {}, state: { current: 0, idleSince: null }, desired: 0, rule: 'idle', idleSince: T },
  { name: 'idle above the ceiling → the ceiling, before the timeout', snapshot: {}, state: { current: 3, ceiling: 1, idleSince: T - 1_000 }, desired: 1, rule: 'ceiling', idleSince: T - 1_000 },
  { name: 'a clock that went back does not count as idle time', snapshot: {}, state: { current: 1, idleSince: T + 5_000 }, desired: 1, rule: 'idle-wait', idleSince: T + 5_000 },
];

describe('autoscaler policy: decide()', () => {
  it.each(cases)('$name', ({ snapshot, state, desired, rule, idleSince }) => {
    const decision = decide({ ...empty, ...snapshot }, { current: 0, ceiling: 10, idleSince: null, ...state }, OPTIONS);
    expect({ desired: decision.desired, rule: decision.rule, idleSince: decision.idleSince }).toEqual({ desired, rule, idleSince });
    expect(decision.reason).toMatch(/\S/);
  });

  it('idle timeout 0 → scales to zero as soon as nothing is pending or active', () => {
    const decision = decide(empty, { current: 1, ceiling: 1, idleSince: null }, policyOptions({ idleTimeoutMs: 0 }));
    expect(decision).toMatchObject({ desired: 0, rule: 'idle-timeout' });
  });

  it('jobsPerWorker 1 → one worker per pending job, up to the ceiling', () => {
    const options = policyOptions({ jobsPerWorker: 1 });
    expect(decide({ ...empty, waiting: 3 }, { current: 0, ceiling: 10, idleSince: null }, options).desired).toBe(3);
    expect(decide({ ...empty, waiting: 30 }, { current: 0, ceiling: 4, idleSince: null }, options).desired).toBe(4);
  });
});

describe('autoscaler policy: policyOptions()', () => {
  it('no options → the documented defaults (60 s, 10 jobs per worker)', () => {
    expect(policyOptions()).toEqual({ idleTimeoutMs: 60_000, jobsPerWorker: 10 });
  });

  it.each([
    [{ jobsPerWorker: 0 }, /jobsPerWorker must be a whole number ≥ 1.*got 0/],
    [{ jobsPerWorker: 2.5 }, /jobsPerWorker/],
    [{ idleTimeoutMs: -1 }, /idleTimeoutMs must be a number of milliseconds ≥ 0.*got -1/],
    [{ idleTimeoutMs: Number.NaN }, /idleTimeoutMs/],
  ])('%j → PolicyOptionsError naming the option', (options, message) => {
    expect(() => policyOptions(options)).toThrow(PolicyOptionsError);
    expect(() => policyOptions(options)).toThrow(message);
  });
});
