// app.json, checked against the Heroku Button's documented rules and against the
// config module: every variable the app reads is described there, and nothing
// described there goes unread.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { LOCAL_VARIABLE_NAMES, PLATFORM_VARIABLE_NAMES, VARIABLE_NAMES } from '../../src/config.js';

interface EnvSpec {
  description?: string;
  value?: string;
  required?: boolean;
  generator?: string;
}
const app = JSON.parse(readFileSync(new URL('../../app.json', import.meta.url), 'utf8')) as {
  name: string;
  description: string;
  repository: string;
  keywords: string[];
  success_url: string;
  env: Record<string, EnvSpec>;
  formation: Record<string, { quantity: number; size: string }>;
  addons: Array<{ plan: string }>;
  buildpacks: Array<{ url: string }>;
  environments: { test: { scripts: { test: string } } };
};
const procfile = readFileSync(new URL('../../Procfile', import.meta.url), 'utf8');
const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as {
  engines: { node: string };
  scripts: Record<string, string>;
  dependencies: Record<string, string>;
};

describe('app.json', () => {
  it('has the Button fields', () => {
    expect(app.name).toMatch(/^[a-z0-9-]{3,30}$/);
    expect(app.description.length).toBeGreaterThan(20);
    expect(app.repository).toMatch(/^https:\/\//);
    expect(app.keywords.length).toBeGreaterThan(2);
    expect(app.success_url).toBe('/');
  });

  it('every env var has a description and one of required / value / generator', () => {
    for (const [name, spec] of Object.entries(app.env)) {
      expect(spec.description, name).toMatch(/\w{3,}/);
      const kinds = [spec.required !== undefined, spec.value !== undefined, spec.generator !== undefined].filter(Boolean);
      expect(kinds.length, `${name} needs exactly one of required, value, generator`).toBe(1);
      if (spec.generator) expect(spec.generator).toBe('secret');
    }
  });

  it('secrets are generated; the platform token and app name are asked for and say what happens without them', () => {
    expect(app.env.SESSION_SECRET?.generator).toBe('secret');
    expect(app.env.ADMIN_PASSWORD?.generator).toBe('secret');
    for (const name of ['HEROKU_API_KEY', 'HEROKU_APP_NAME']) {
      expect(app.env[name]?.required, name).toBe(false);
      expect(app.env[name]?.description, name).toMatch(/Without it the autoscaler is off/);
    }
    expect(app.env.SMTP_URL?.required).toBe(true);
  });

  it('each variable the config module reads is in app.json (or set by the platform), and each app.json variable is read', () => {
    const deployed = VARIABLE_NAMES.filter((n) => !LOCAL_VARIABLE_NAMES.includes(n) && !PLATFORM_VARIABLE_NAMES.includes(n));
    expect(Object.keys(app.env).sort()).toEqual([...deployed].sort());
  });

  it('formation: web 1, worker 0 (the autoscaler brings it up), sizes named; WEB_DYNOS matches', () => {
    expect(app.formation.web).toEqual({ quantity: 1, size: expect.any(String) });
    expect(app.formation.worker).toEqual({ quantity: 0, size: expect.any(String) });
    expect(app.env.WEB_DYNOS?.value).toBe(String(app.formation.web!.quantity));
  });

  it('add-ons: Heroku Postgres essential and Heroku Key-Value Store mini; the Node.js buildpack', () => {
    const plans = app.addons.map((a) => a.plan);
    expect(plans).toContain('heroku-postgresql:essential-0');
    expect(plans).toContain('heroku-redis:mini');
    expect(app.buildpacks.map((b) => b.url)).toEqual(['heroku/nodejs']);
    expect(app.env.REDIS_MAX_CONNECTIONS?.value).toBe('10');
  });

  it('a test environment that runs the suite', () => {
    expect(app.environments.test.scripts.test).toMatch(/npm test/);
  });

  it('Procfile: web, worker and release, each running built code with node; engines pin Node; build compiles', () => {
    const lines = Object.fromEntries(procfile.trim().split('\n').map((l) => l.split(/:\s+/, 2) as [string, string]));
    expect(Object.keys(lines).sort()).toEqual(['release', 'web', 'worker']);
    expect(lines.web).toMatch(/dist\/web\/main\.js$/);
    expect(lines.worker).toMatch(/dist\/worker\/main\.js$/);
    expect(lines.release).toMatch(/dist\/release\/main\.js$/);
    expect(pkg.engines.node).toMatch(/20\.19/);
    expect(pkg.scripts.build).toMatch(/prisma generate|npm run generate/);
    expect(pkg.scripts.build).toMatch(/tsc/);
  });
});
