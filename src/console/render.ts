/**
 * The console's pages, drawn from a snapshot (snapshot.ts). Read-only: each page names the CLI
 * command for the action it suggests. Tables are lists of columns, so a new field is one line.
 */
import { html, type Html } from './html.js';
import type { AuditFile } from './audit-view.js';
import type { KeyCertificate } from './certificates.js';
import type { ConsoleSnapshot, KeyRow, PoolRow, SignerRow } from './snapshot.js';
import type { AuditEntry } from '../audit/log.js';
import type { RateSample } from './rates.js';

export const PAGES = ['cluster', 'keys', 'pools', 'audit'] as const;
export type PageName = (typeof PAGES)[number];
/** How often the page fetches itself again (console.js reads it from the body). */
export const REFRESH_MS = 2000;

const PATHS: Record<PageName, string> = { cluster: '/console', keys: '/console/keys', pools: '/console/pools', audit: '/console/audit' };
export const pagePath = (p: PageName) => PATHS[p];

type Column<T> = [head: string, cell: (row: T) => Html | string | number];

function table<T>(name: string, columns: Column<T>[], rows: T[], rowClass: (row: T) => string = () => ''): Html {
  return html`<table class="${name}"><thead><tr>${columns.map(([h]) => html`<th>${h}</th>`)}</tr></thead><tbody>${rows.map(
    (r) => html`<tr class="${rowClass(r)}">${columns.map(([, cell]) => html`<td>${cell(r)}</td>`)}</tr>`,
  )}</tbody></table>`;
}

const list = (xs: readonly (number | string)[]) => (xs.length ? xs.join(', ') : '—');
const time = (ms: number) => new Date(ms).toISOString().replace('T', ' ').replace(/\.\d+Z$/, 'Z');
const state = (ok: boolean, yes: string, no: string) => html`<span class="state ${ok ? 'ok' : 'bad'}">${ok ? yes : no}</span>`;

const SIGNER_COLUMNS: Column<SignerRow>[] = [
  ['signer', (s) => s.index],
  ['state', (s) => (s.quarantined ? html`<span class="state bad">quarantined</span> ${s.quarantineReason}` : state(s.up, 'up', 'down'))],
  ['endpoint', (s) => s.endpoint],
  ['boot id', (s) => s.bootId || '—'],
  ['latency', (s) => (s.latencyMs === undefined ? '—' : `${s.latencyMs.toFixed(1)} ms`)],
  ['key epochs', (s) => list(s.epochs.map((e) => `${e.keyId}@${e.epoch}`))],
  ['pending shares', (s) => (s.pending.length ? html`<span class="state warn">${s.pending.map((e) => `${e.keyId}@${e.epoch}`).join(', ')}</span>` : '—')],
  ['conflicts', (s) => (s.conflicts.length ? s.conflicts.map((c) => `${c.keyId}: with ${c.peer} (${c.reason})`).join('; ') : '—')],
  ['last error', (s) => s.lastError || '—'],
];

const KEY_COLUMNS: Column<KeyRow>[] = [
  ['key', (k) => k.id],
  ['quorum', (k) => state(k.quorum, `${k.threshold} of ${k.signers.length}`, `no (${k.threshold} of ${k.signers.length})`)],
  ['holders', (k) => list(k.signers)],
  ['healthy', (k) => list(k.healthy)],
  ['subsets usable / available', (k) => `${k.subsets.usable} / ${k.subsets.available} of ${k.subsets.total}`],
  ['epoch', (k) => html`${k.epoch}${k.offEpoch.length ? html` <span class="state bad">signers ${list(k.offEpoch)} on another epoch</span>` : ''}${k.pendingOn.length ? html` <span class="state warn">refresh pending on ${list(k.pendingOn)}</span>` : ''}`],
  ['holder epochs', (k) => k.holderEpochs.map((x) => `${x.signer}:${x.epoch ?? '-'}${x.pending === undefined ? '' : ` (pending ${x.pending})`}`).join(' ')],
  ['certificate', (k) => (k.certificates.length ? html`${k.certificates.map(certificate)}` : '—')],
  ['contexts', (k) => list(k.contexts)],
  ['policy', (k) => html`<code>${k.policy}</code>${k.policySealed ? '' : html` <span class="state bad">not sealed</span>`}`],
  ['clients', (k) => list(k.clients)],
  ['public key', (k) => html`<code>${k.publicKey}</code>`],
  ['created', (k) => time(k.created)],
];

const POOL_COLUMNS: Column<PoolRow>[] = [
  ['key', (p) => p.keyId],
  ['subset', (p) => list(p.subset)],
  ['depth', (p) => html`<span class="depth">${p.depth}</span>`],
  ['low water', (p) => p.lowWater],
  ['high water', (p) => p.target],
  ['fill', (p) => html`${meter(p.depth, p.lowWater, p.target)}${p.depth < p.lowWater ? html` <span class="state warn">below low water</span>` : ''}`],
];

const AUDIT_FILE_COLUMNS: Column<AuditFile>[] = [
  ['file', (f) => f.name],
  ['bytes', (f) => f.bytes],
  ['state', (f) => (f.active ? 'active' : 'closed')],
];

const AUDIT_COLUMNS: Column<AuditEntry>[] = [
  ['seq', (e) => e.seq],
  ['time', (e) => e.time],
  ['event', (e) => field(e, 'event')],
  ['key', (e) => field(e, 'key_id')],
  ['context', (e) => field(e, 'context')],
  ['caller', (e) => field(e, 'caller')],
  ['detail', (e) => html`<code>${JSON.stringify(recordOf(e).detail ?? recordOf(e).reason ?? '')}</code>`],
  ['hash', (e) => html`<code>${e.hash.slice(0, 16)}…</code>`],
];

function recordOf(e: AuditEntry): Record<string, unknown> {
  return typeof e.record === 'object' && e.record !== null && !Array.isArray(e.record) ? (e.record as Record<string, unknown>) : {};
}
function field(e: AuditEntry, name: string): string {
  const v = recordOf(e)[name];
  return v === undefined ? '—' : typeof v === 'string' ? v : JSON.stringify(v);
}

/** One certificate the CA issued for a key: serial, subject, expiry, revocation. */
function certificate(c: KeyCertificate): Html {
  const expired = Date.parse(c.notAfter) <= Date.now();
  const status = c.revoked ? html`<span class="state bad">revoked ${c.revoked.at} (${c.revoked.reason})</span>` : expired ? html`<span class="state bad">expired</span>` : html`<span class="state ok">valid</span>`;
  return html`<div class="certificate"><code class="serial">${c.serial}</code> <span class="subject">${c.subject}</span> until <time class="not-after">${c.notAfter}</time> ${status}</div>`;
}

/** Depth against the marks: the bar is the depth, the tick the low-water mark, the end the high-water mark. */
function meter(depth: number, lowWater: number, target: number): Html {
  const ratio = target > 0 ? Math.min(1, depth / target) : depth > 0 ? 1 : 0;
  const low = target > 0 ? (lowWater / target) * 100 : 0;
  return html`<svg class="meter" viewBox="0 0 100 8" width="100" height="8" role="img" aria-label="${depth} of ${target}, low water ${lowWater}"><rect class="meter-bg" width="100" height="8"/><rect class="meter-fill" width="${(ratio * 100).toFixed(1)}" height="8"/><rect class="meter-low" x="${Math.max(0, low - 0.5).toFixed(1)}" width="1" height="8"/></svg>`;
}

/** A line chart in plain SVG: one series over the sampled minutes. */
function chart(title: string, unit: string, samples: RateSample[], value: (s: RateSample) => number | undefined): Html {
  const W = 600;
  const H = 100;
  const points = samples.map((s) => value(s));
  const max = Math.max(1e-9, ...points.map((v) => v ?? 0));
  const step = points.length > 1 ? W / (points.length - 1) : W;
  const coords = points.map((v, i) => `${(i * step).toFixed(1)},${(H - ((v ?? 0) / max) * (H - 4)).toFixed(1)}`).join(' ');
  const last = points.at(-1);
  return html`<figure class="chart"><figcaption>${title}: ${last === undefined ? '—' : `${last.toFixed(2)} ${unit}`} (max ${max.toFixed(2)}, ${samples.length} samples)</figcaption><svg viewBox="0 0 ${W} ${H}" preserveAspectRatio="none" role="img" aria-label="${title}"><rect class="chart-bg" width="${W}" height="${H}"/>${points.length > 1 ? html`<polyline class="chart-line" points="${coords}"/>` : ''}</svg></figure>`;
}

function commands(lines: string[]): Html {
  return html`<section class="cli"><h2>From the CLI</h2><p>The console is read-only; actions are CLI commands (add <code>--dir DIR</code>):</p><pre>${lines.join('\n')}</pre></section>`;
}

function clusterPage(s: ConsoleSnapshot): Html {
  const up = s.signers.filter((x) => x.up).length;
  const cmds = ['quorumkey status'];
  for (const x of s.signers) {
    if (!x.up) cmds.push(`# signer ${x.index} is down: start it again with its command under DIR/run`);
    if (x.quarantined) cmds.push(`quorumkey signers readmit ${x.index}`);
    for (const c of x.conflicts) if (x.index < c.peer) cmds.push(`quorumkey signers reconcile --key ${c.keyId} ${x.index} ${c.peer}`);
    for (const p of x.pending) cmds.push(`# signer ${x.index} holds a pending share of ${p.keyId} (epoch ${p.epoch}): the coordinator commits or discards it at its next Health answer; 'quorumkey status' shows it settle`);
  }
  cmds.push(...offEpochHints(s.keys));
  return html`<h1>Cluster</h1><p class="summary"><span id="signers-up">${up}</span> of <span id="signer-count">${s.signers.length}</span> signers up, ${s.keys.length} keys</p>
${table('signers', SIGNER_COLUMNS, s.signers, (x) => `signer-${x.index} ${x.up ? 'up' : 'down'}`)}
<h2>Signing, last minutes</h2>
${chart('sign rate', '/s', s.rates, (r) => r.signsPerSecond)}
${chart('mean sign latency', 'ms', s.rates, (r) => r.meanLatencyMs)}
${commands(cmds)}`;
}

/** The runbook step for holders on another epoch than the committed one (a share restored from a backup). */
function offEpochHints(keys: KeyRow[]): string[] {
  return keys.flatMap((k) =>
    k.offEpoch.map((i) => `# signer ${i} holds ${k.id} at epoch ${k.holderEpochs.find((x) => x.signer === i)!.epoch}, committed is ${k.epoch}: an older share (restored from a backup?) cannot sign; see the README runbook "restore a backup"`),
  );
}

function keysPage(s: ConsoleSnapshot): Html {
  const cmds = ['quorumkey key list', ...s.keys.map((k) => `quorumkey refresh ${k.id}`)];
  for (const k of s.keys) if (!k.policySealed) cmds.push(`quorumkey key adopt-policy ${k.id}`);
  cmds.push(...offEpochHints(s.keys));
  if (s.keys.some((k) => k.certificates.length)) cmds.push('quorumkey cert list');
  const problem = s.certificateProblem === undefined ? '' : html`<p class="state bad" role="alert">certificates unknown: ${s.certificateProblem}</p>`;
  return html`<h1>Keys</h1><p class="summary"><span id="key-count">${s.keys.length}</span> keys</p>${problem}${table('keys', KEY_COLUMNS, s.keys, (k) => `key-${k.id} ${k.quorum && !k.offEpoch.length ? 'ok' : 'bad'}${k.pendingOn.length ? ' pending' : ''}`)}${commands(cmds)}`;
}

function poolsPage(s: ConsoleSnapshot): Html {
  const last = s.rates.at(-1);
  return html`<h1>Presignature pools</h1><p class="summary">${s.pools.length} pools, refilled in batches of ${s.poolBatch}; presign rate ${last ? last.presignaturesPerSecond.toFixed(2) : '—'} presignatures/s</p>
${table('pools', POOL_COLUMNS, s.pools, (p) => `pool ${p.depth === 0 && p.target > 0 ? 'bad' : p.depth < p.lowWater ? 'low' : ''}`)}
${chart('presign rate', '/s', s.rates, (r) => r.presignaturesPerSecond)}
${commands(['quorumkey status'])}`;
}

function auditPage(s: ConsoleSnapshot): Html {
  const a = s.audit;
  const head = `head ${a.head.seq}:${a.head.hash}`;
  return html`<h1>Audit</h1>
<dl class="audit"><dt>head</dt><dd><code id="audit-head">${head}</code></dd>
<dt>merkle root</dt><dd><code id="audit-root">merkle root ${a.merkleRoot || '—'} over ${a.merkleRecords} records</code></dd>
<dt>chain</dt><dd>${a.verify.ok ? state(true, 'verified', '') : state(false, '', `broken at line ${a.verify.line}: ${a.verify.reason}`)}</dd>
<dt>writable</dt><dd>${a.writable ? state(true, 'yes', '') : state(false, '', `no: ${a.problem ?? ''}`)}</dd></dl>
<h2>Files</h2><p class="summary">${a.rotateBytes > 0 ? `the active file rotates at ${a.rotateBytes} bytes` : 'rotation is off'}; one hash chain across the files, oldest first</p>${table('audit-files', AUDIT_FILE_COLUMNS, a.files)}
<h2>Latest records</h2>${table('audit-records', AUDIT_COLUMNS, a.latest)}
${commands(['quorumkey audit head', `quorumkey audit verify --head ${a.head.seq}:${a.head.hash} --cross`])}`;
}

const RENDER: Record<PageName, (s: ConsoleSnapshot) => Html> = { cluster: clusterPage, keys: keysPage, pools: poolsPage, audit: auditPage };

/** The whole document of one page. */
export function renderPage(page: PageName, s: ConsoleSnapshot, caller: string): string {
  const banner = s.degraded.length
    ? html`<div class="banner degraded" id="degraded" role="alert"><strong>Degraded</strong><ul>${s.degraded.map((d) => html`<li>${d}</li>`)}</ul></div>`
    : html`<div class="banner ok" id="healthy">All keys have quorum with a spare signer; the audit log is writable.</div>`;
  return html`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>quorumkey console: ${page}</title><link rel="icon" href="data:,"><link rel="stylesheet" href="/console/assets/console.css"><script src="/console/assets/console.js" defer></script></head>
<body data-refresh-ms="${REFRESH_MS}"><header><span class="brand">quorumkey</span><nav>${PAGES.map(
    (p) => html`<a href="${PATHS[p]}"${p === page ? html` class="current"` : ''}>${p}</a>`,
  )}</nav><span class="who">signed in as ${caller}</span></header>
<div id="live">${banner}<main>${RENDER[page](s)}</main><footer>updated <time id="updated">${time(s.generated)}</time></footer></div>
<p id="refresh-status" class="refresh-status"></p></body></html>
`.text;
}

/** The sign-in page (no data). `message`: why the last attempt failed. */
export function renderLogin(message?: string): string {
  return html`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>quorumkey console: sign in</title><link rel="icon" href="data:,"></head>
<body><h1>quorumkey console</h1>${message ? html`<p role="alert">${message}</p>` : ''}
<form method="post" action="/console/login"><label>Console token (the file coordinator/console.token in the cluster directory)<br><input type="password" name="token" autocomplete="off" required></label> <button type="submit">Sign in</button></form>
<p>Or use an admin client certificate of the cluster CA over HTTPS.</p></body></html>
`.text;
}
