// The scaling policy, as a pure function: from a queue snapshot, the current worker
// quantity, the budget's ceiling and how long the queue has been idle, decide how
// many worker dynos there should be. It does no I/O and reads no clock (the time is
// in the snapshot), so its tests are plain tables. The rules, in order:
// 1. pending work (waiting + prioritized + delayed jobs due within the look-ahead,
//    which is where BullMQ keeps retries) asks for ⌈pending / jobsPerWorker⌉ workers,
//    at least 1 while anything is pending or active;
// 2. never below the current quantity while a job is active: a platform scale-down
//    stops dynos it picks itself, possibly the one running a long job;
// 3. never above the ceiling (the connection budget), even if that means scaling down;
// 4. with nothing pending or active, keep the current quantity until the queue has been
//    idle for idleTimeoutMs, then 0.

export interface QueueSnapshot {
  waiting: number;
  prioritized: number;
  active: number;
  /** Delayed jobs (including retries waiting for their back-off) due within the look-ahead. */
  delayedDue: number;
  /** When the snapshot was taken (ms since the epoch). */
  at: number;
}

export interface ScalingState {
  /** The worker quantity the platform runs now. */
  current: number;
  /** The most worker dynos the connection budget allows. */
  ceiling: number;
  /** Since when (ms) nothing has been pending or active; null while busy. */
  idleSince: number | null;
}

export interface PolicyOptions {
  /** Idle time before scaling to zero. Default 60_000 (IDLE_TIMEOUT=60). */
  idleTimeoutMs: number;
  /** Pending jobs one worker dyno is expected to absorb. Default 10 (JOBS_PER_WORKER). */
  jobsPerWorker: number;
}

export const DEFAULT_POLICY_OPTIONS: Readonly<PolicyOptions> = Object.freeze({ idleTimeoutMs: 60_000, jobsPerWorker: 10 });

/** Which rule decided: stable names for logs, the status page and tests. */
export type ScalingRule = 'load' | 'active-hold' | 'ceiling' | 'idle-wait' | 'idle-timeout' | 'idle';

export interface ScalingDecision {
  desired: number;
  rule: ScalingRule;
  /** One human sentence: why this quantity. */
  reason: string;
  /** The idleSince to keep for the next decision. */
  idleSince: number | null;
}

export class PolicyOptionsError extends Error {
  readonly code = 'nanoscale:autoscaler-policy';
  constructor(field: keyof PolicyOptions, value: unknown, fix: string) {
    super(`autoscaler policy option ${field} must be ${fix}, got ${JSON.stringify(value)}`);
    this.name = 'PolicyOptionsError';
  }
}

/** Spreads `options` over the defaults and checks them; throws PolicyOptionsError. */
export function policyOptions(options: Partial<PolicyOptions> = {}): PolicyOptions {
  const full = { ...DEFAULT_POLICY_OPTIONS, ...options };
  if (!Number.isFinite(full.idleTimeoutMs) || full.idleTimeoutMs < 0) {
    throw new PolicyOptionsError('idleTimeoutMs', full.idleTimeoutMs, 'a number of milliseconds ≥ 0 (e.g. 60000)');
  }
  if (!Number.isSafeInteger(full.jobsPerWorker) || full.jobsPerWorker < 1) {
    throw new PolicyOptionsError('jobsPerWorker', full.jobsPerWorker, 'a whole number ≥ 1 (e.g. 10)');
  }
  return full;
}

const seconds = (ms: number) => `${Math.round(ms / 100) / 10}s`;

export function decide(snapshot: QueueSnapshot, state: ScalingState, options: PolicyOptions): ScalingDecision {
  const { current, ceiling } = state;
  const pending = snapshot.waiting + snapshot.prioritized + snapshot.delayedDue;
  const active = snapshot.active;

  if (pending + active === 0) {
    const idleSince = state.idleSince ?? snapshot.at;
    const idleFor = Math.max(0, snapshot.at - idleSince);
    if (current === 0) return { desired: 0, rule: 'idle', reason: 'nothing pending or active', idleSince };
    if (idleFor >= options.idleTimeoutMs) {
      return { desired: 0, rule: 'idle-timeout', reason: `idle for ${seconds(idleFor)} ≥ ${seconds(options.idleTimeoutMs)}`, idleSince };
    }
    if (current > ceiling) return { desired: ceiling, rule: 'ceiling', reason: `above the ceiling of ${ceiling} while idle`, idleSince };
    return { desired: current, rule: 'idle-wait', reason: `idle for ${seconds(idleFor)} < ${seconds(options.idleTimeoutMs)}: keep ${current}`, idleSince };
  }

  const linear = Math.max(1, Math.ceil(pending / options.jobsPerWorker));
  let decision: ScalingDecision = {
    desired: linear,
    rule: 'load',
    reason: `${pending} pending, ${active} active: ⌈${pending}/${options.jobsPerWorker}⌉ → ${linear}`,
    idleSince: null,
  };
  if (active > 0 && current > linear) {
    decision = { ...decision, desired: current, rule: 'active-hold', reason: `${active} active: no scale-down below ${current} while jobs run` };
  }
  if (decision.desired > ceiling) {
    decision = { ...decision, desired: ceiling, rule: 'ceiling', reason: `${decision.reason}, capped at the ceiling of ${ceiling}` };
  }
  return decision;
}
