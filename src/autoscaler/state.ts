// The autoscaler's shared state: one Redis hash per process type (the known formation,
// the last decision, idle-since, platform calls, the last error, the back-off) plus
// the platform lock and the reconcile turn. Every process reads and writes it on its
// existing shared client; this file holds its keys, its shape and its parsing.

export interface AutoscalerStatus {
  processType: string;
  platform: string;
  /** Known formation quantity; null before the first read. */
  current: number | null;
  currentAt: number | null;
  /** A change may or may not have applied (5xx, time-out): the next turn reads the formation first. */
  uncertain: boolean;
  desired: number | null;
  rule: string | null;
  reason: string | null;
  decidedAt: number | null;
  ceiling: number;
  ceilingReason: string | null;
  idleSince: number | null;
  lastChange: { from: number; to: number; at: number; by: string } | null;
  platformCalls: number;
  lastCallAt: number | null;
  lastError: { message: string; status: number | null; at: number; by: string } | null;
  consecutiveFailures: number;
  backoffUntil: number | null;
  rateLimitRemaining: number | null;
}

export function autoscalerKeys(keyPrefix: string, processType: string) {
  const state = `${keyPrefix}:${processType}`;
  return { state, lock: `${state}:lock`, reconcile: `${state}:reconcile` };
}

// Release or extend the lock only if it is still ours (it may have expired and been retaken).
export const RELEASE = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end return 0";
export const EXTEND = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('pexpire', KEYS[1], ARGV[2]) end return 0";

export type Stored = Omit<AutoscalerStatus, 'processType' | 'platform' | 'ceiling' | 'ceilingReason'>;

const num = (v: string | undefined) => (v === undefined || v === '' || Number.isNaN(Number(v)) ? null : Number(v));
function json<T>(v: string | undefined): T | null {
  try {
    return v ? (JSON.parse(v) as T) : null;
  } catch {
    return null;
  }
}

export function parseStored(h: Record<string, string>): Stored {
  return {
    current: num(h.quantity),
    currentAt: num(h.quantityAt),
    uncertain: h.uncertain === '1',
    desired: num(h.desired),
    rule: h.rule ?? null,
    reason: h.reason ?? null,
    decidedAt: num(h.decidedAt),
    idleSince: num(h.idleSince),
    lastChange: json(h.lastChange),
    platformCalls: num(h.calls) ?? 0,
    lastCallAt: num(h.lastCallAt),
    lastError: json(h.lastError),
    consecutiveFailures: num(h.failures) ?? 0,
    backoffUntil: num(h.backoffUntil),
    rateLimitRemaining: num(h.rateLimitRemaining),
  };
}
