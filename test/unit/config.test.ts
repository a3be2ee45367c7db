import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig, loadReleaseConfig, VARIABLE_NAMES } from '../../src/config.js';

const required = { REDIS_URL: 'redis://127.0.0.1:6379', DATABASE_URL: 'postgres://u:p@127.0.0.1/db', SMTP_URL: 'smtp://127.0.0.1:25' };

function problems(env: Record<string, string>): string[] {
  try {
    loadConfig(env);
  } catch (err) {
    if (err instanceof ConfigError) return err.problems;
    throw err;
  }
  return [];
}

describe('config', () => {
  it('only the three service URLs → every default', () => {
    const c = loadConfig(required);
    expect(c).toMatchObject({
      env: 'development',
      port: 3000,
      webConcurrency: 3,
      workerConcurrency: 2,
      queueName: 'downloads',
      downloadTtlMs: 86_400_000,
      budget: { redisMaxConnections: 10, redisReservedConnections: 2, webDynos: 2, databaseMaxConnections: 20 },
    });
    expect(Object.isFrozen(c)).toBe(true);
  });

  it.each([
    [{}, /REDIS_URL is not set: set it to your Redis URL/],
    [{ ...required, REDIS_URL: 'http://x' }, /REDIS_URL=http:\/\/x\/ is invalid \(must be a URL starting with redis:\/\/ or rediss:\/\/\)/],
    [{ ...required, WEB_CONCURRENCY: '0' }, /WEB_CONCURRENCY="0" is invalid .*: use the number of web processes per dyno/],
    [{ ...required, PORT: 'eighty' }, /PORT="eighty" is invalid/],
    [{ ...required, DOWNLOAD_TTL: '5' }, /DOWNLOAD_TTL="5" is invalid/],
    [{ ...required, NODE_ENV: 'staging' }, /NODE_ENV="staging" is invalid .*: use development, production or test/],
  ])('%o → a problem naming the variable and the fix', (env, expected) => {
    expect(problems(env as Record<string, string>).join('\n')).toMatch(expected);
  });

  it('a bad secret URL → the message shows it without its password', () => {
    const text = problems({ ...required, DATABASE_URL: 'mysql://admin:hunter2@db/x' }).join('\n');
    expect(text).toContain('DATABASE_URL=mysql://admin:***@db/x');
    expect(text).not.toContain('hunter2');
  });

  it('all problems at once, not the first only', () => {
    expect(problems({ WEB_CONCURRENCY: 'x' })).toHaveLength(4);
  });

  it('the release phase needs DATABASE_URL only', () => {
    expect(loadReleaseConfig({ DATABASE_URL: required.DATABASE_URL }).databaseUrl).toBe(required.DATABASE_URL);
    expect(() => loadReleaseConfig({})).toThrow(/DATABASE_URL is not set/);
  });

  it('VARIABLE_NAMES lists every variable the config reads', () => {
    expect(VARIABLE_NAMES).toContain('REDIS_URL');
    expect(new Set(VARIABLE_NAMES).size).toBe(VARIABLE_NAMES.length);
  });
});
