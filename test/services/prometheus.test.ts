/**
 * A real Prometheus (Debian's package) scrapes a real cluster: coordinator and signers expose the
 * expected series, `promtool check metrics` is clean on every endpoint, the alert rules pass
 * `promtool check rules` and load, and every dashboard expression evaluates.
 */
import { strict as assert } from 'node:assert';
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { certificateVerifyTbs, pool, signOverGrpc, UpProcess } from './cluster-harness.js';
import { assertPromtoolClean, requireTool } from './processes.js';
import { waitFor } from '../coordinator/clients.js';
import { freePort } from '../../src/cli/children.js';

const REPO = fileURLToPath(new URL('../../../', import.meta.url));
const ALERTS = join(REPO, 'deploy/prometheus/alerts.yml');
const DASHBOARD = join(REPO, 'deploy/grafana/quorumkey.json');


/** Series of these exist only after an incident (a blame, a pair conflict): none in an honest cluster. */
const INCIDENT_ONLY = ['quorumkey_blames_total', 'quorumkey_pair_conflict'];

async function api(base: string, path: string): Promise<{ status: string; data: unknown }> {
  const res = await fetch(`${base}${path}`);
  return (await res.json()) as { status: string; data: unknown };
}

describe('Prometheus scrapes the cluster', function () {
  this.timeout(300_000);
  const up = new UpProcess();
  let prometheus: ChildProcess | undefined;
  let base = '';
  let endpoints: { job: string; target: string }[] = [];

  before(async function () {
    requireTool('prometheus', 'prometheus');
    requireTool('promtool', 'prometheus');
    await up.start(['--signers', '3', '--threshold', '2']);
    const client = up.coordinator();
    await pool(20, 4, () => signOverGrpc(client, 'tls', certificateVerifyTbs()));
    client.close();
    const config = up.config();
    endpoints = [{ job: 'quorumkey-coordinator', target: config.coordinator.http }, ...config.signers.map((s) => ({ job: 'quorumkey-signer', target: s.http }))];
    const work = mkdtempSync(join(tmpdir(), 'qk-prometheus-'));
    const jobs = new Map<string, string[]>();
    for (const e of endpoints) jobs.set(e.job, [...(jobs.get(e.job) ?? []), e.target]);
    writeFileSync(
      join(work, 'prometheus.yml'),
      [
        'global:',
        '  scrape_interval: 1s',
        '  evaluation_interval: 1s',
        'rule_files:',
        `  - ${ALERTS}`,
        'scrape_configs:',
        ...[...jobs].flatMap(([job, targets]) => [`  - job_name: ${job}`, '    static_configs:', `      - targets: [${targets.map((t) => `'${t}'`).join(', ')}]`]),
      ].join('\n') + '\n',
    );
    const port = await freePort();
    base = `http://127.0.0.1:${port}`;
    prometheus = spawn('prometheus', [`--config.file=${join(work, 'prometheus.yml')}`, `--storage.tsdb.path=${join(work, 'data')}`, `--web.listen-address=127.0.0.1:${port}`], {
      stdio: 'ignore',
    });
    const deadline = Date.now() + 60_000;
    for (;;) {
      try {
        const targets = (await api(base, '/api/v1/targets')).data as { activeTargets: { health: string }[] };
        if (targets.activeTargets.length === endpoints.length && targets.activeTargets.every((t) => t.health === 'up')) break;
      } catch {
        // not listening yet
      }
      if (Date.now() > deadline) throw new Error('Prometheus did not scrape every target');
      await new Promise((r) => setTimeout(r, 500));
    }
  });

  after(async function () {
    prometheus?.kill('SIGTERM');
    await up.stop();
  });

  it('has the coordinator and signer series after real signing', async function () {
    const expected = [
      'quorumkey_sign_requests_total{key="tls",context="tls-server",result="ok"}',
      'quorumkey_sign_duration_seconds_count',
      'quorumkey_signer_finish_duration_seconds_count{job="quorumkey-coordinator"}',
      'quorumkey_pool_depth{key="tls"}',
      'quorumkey_presignatures_generated_total',
      'quorumkey_signer_up',
      'quorumkey_signer_healthy',
      'quorumkey_signer_quarantined',
      'quorumkey_usable_subsets{key="tls"}',
      'quorumkey_key_quorum_available{key="tls"}',
      'quorumkey_audit_records_total',
      'quorumkey_signer_sessions_total{job="quorumkey-signer",protocol="presign"}',
      'quorumkey_signer_presignatures{job="quorumkey-signer"}',
      'quorumkey_signer_finish_duration_seconds_count{job="quorumkey-signer"}',
    ];
    for (const query of expected) {
      const res = await api(base, `/api/v1/query?query=${encodeURIComponent(query)}`);
      assert.equal(res.status, 'success', query);
      const result = (res.data as { result: unknown[] }).result;
      assert.ok(result.length > 0, `no series for ${query}`);
    }
    const signed = await api(base, `/api/v1/query?query=${encodeURIComponent('sum(quorumkey_sign_requests_total{result="ok"})')}`);
    const value = Number(((signed.data as { result: { value: [number, string] }[] }).result[0]!.value[1]));
    assert.ok(value >= 20, `Prometheus saw ${value} successful signatures`);
    const up3 = await api(base, `/api/v1/query?query=${encodeURIComponent('sum(quorumkey_signer_up)')}`);
    assert.equal(Number((up3.data as { result: { value: [number, string] }[] }).result[0]!.value[1]), 3);
  });

  it('promtool check metrics is clean on every endpoint', async function () {
    for (const e of endpoints) {
      assertPromtoolClean(await (await fetch(`http://${e.target}/metrics`)).text(), `${e.job} ${e.target}`);
    }
  });

  it('the alert rules pass promtool and are loaded by Prometheus', async function () {
    const out = execFileSync('promtool', ['check', 'rules', ALERTS], { encoding: 'utf8' });
    assert.match(out, /SUCCESS: 9 rules found/);
    type Rules = { groups: { rules: { name: string; health: string }[] }[] };
    const loaded = ((await api(base, '/api/v1/rules')).data as Rules).groups.flatMap((g) => g.rules);
    assert.equal(loaded.length, 9);
    for (const name of ['QuorumkeyPairConflict', 'QuorumkeyFewUsableSubsets']) assert.ok(loaded.some((r) => r.name === name), `rule ${name} loaded`);
    // Health is 'unknown' until a rule's first evaluation: wait for every one to be evaluated.
    const evaluated = await waitFor('every rule evaluated', async () => {
      const rules = ((await api(base, '/api/v1/rules')).data as Rules).groups.flatMap((g) => g.rules);
      return rules.every((r) => r.health !== 'unknown') ? rules : undefined;
    }, 60_000, 500);
    for (const rule of evaluated) assert.equal(rule.health, 'ok', `rule ${rule.name} does not evaluate`);
  });

  it('every Grafana dashboard expression gives series after fresh traffic (a misspelled metric gives none)', async function () {
    // Traffic now, while Prometheus scrapes: the rates and quantiles over it are defined.
    const client = up.coordinator();
    await pool(20, 4, () => signOverGrpc(client, 'tls', certificateVerifyTbs()));
    client.close();
    await waitFor('the new signatures scraped', async () => (await values('sum(increase(quorumkey_sign_requests_total{result="ok"}[1m]))'))[0]! > 0, 60_000, 500);
    const dashboard = JSON.parse(readFileSync(DASHBOARD, 'utf8')) as { panels: { title: string; targets: { expr: string }[] }[] };
    const exprs = dashboard.panels.flatMap((p) => p.targets.map((t) => [p.title, t.expr] as const));
    assert.ok(exprs.length >= 10);
    for (const [title, expr] of exprs) {
      const names = expr.match(/quorumkey_[a-z_]+/g) ?? [];
      assert.ok(names.length > 0, `panel '${title}' queries no quorumkey metric: ${expr}`);
      const incidents = names.filter((n) => INCIDENT_ONLY.includes(n));
      const result = await values(expr);
      if (incidents.length) {
        // No incident in an honest cluster: no series; the metric itself is known to Prometheus.
        assert.deepEqual(result, [], `panel '${title}': ${expr}`);
        for (const name of incidents) assert.ok(((await api(base, `/api/v1/metadata?metric=${name}`)).data as Record<string, unknown>)[name], `Prometheus does not know ${name}`);
      } else {
        assert.ok(result.length > 0, `panel '${title}' has no series: ${expr}`);
        assert.ok(result.some(Number.isFinite), `panel '${title}' has no numeric series: ${expr} = ${result}`);
      }
    }
  });

  /** The values of an instant query's series (success required). */
  async function values(query: string): Promise<number[]> {
    const res = await api(base, `/api/v1/query?query=${encodeURIComponent(query)}`);
    assert.equal(res.status, 'success', query);
    return (res.data as { result: { value: [number, string] }[] }).result.map((r) => Number(r.value[1]));
  }
});
