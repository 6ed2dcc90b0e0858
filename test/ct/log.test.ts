/**
 * The CT log front end to end: `quorumkey up --no-tls` (3 signers, so no log until one is
 * configured), `quorumkey ca init` (the threshold CA), `quorumkey ct init` (a threshold key with
 * policy sct, accepting the CA's root), the RFC 6962 API over real HTTP, `cert issue --ct` (a
 * precertificate through the log, the SCT embedded), and `openssl s_client -ct` against nginx.
 * Every signature is checked here with node:crypto over RFC 6962 structures this file builds itself.
 */
import { strict as assert } from 'node:assert';
import { spawnSync } from 'node:child_process';
import { createHash, createPublicKey, verify, X509Certificate } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { join } from 'node:path';
import { AsnConvert, AsnParser, OctetString } from '@peculiar/asn1-schema';
import { Certificate, Extensions } from '@peculiar/asn1-x509';
import { cli, UpProcess } from '../services/cluster-harness.js';
import { REPO, startNginx, type RunningServer } from '../tls/servers.js';

// ---- RFC 6962, written out independently of src/ct ----------------------------------------
const u8 = (v: number) => Buffer.from([v]);
const u16 = (v: number) => Buffer.from([v >> 8, v & 0xff]);
const u24 = (v: number) => Buffer.from([v >> 16, (v >> 8) & 0xff, v & 0xff]);
const u64 = (v: number) => {
  const b = Buffer.alloc(8);
  b.writeBigUInt64BE(BigInt(v));
  return b;
};
const sha256 = (...parts: Uint8Array[]) => createHash('sha256').update(Buffer.concat(parts)).digest();
/** signed_entry of an x509_entry (0) or a precert_entry (1). */
const x509Entry = (cert: Buffer) => Buffer.concat([u16(0), u24(cert.length), cert]);
const precertEntry = (issuerKeyHash: Buffer, tbs: Buffer) => Buffer.concat([u16(1), issuerKeyHash, u24(tbs.length), tbs]);
/** §3.2 digitally-signed input: version v1, signature_type certificate_timestamp, no extensions. */
const sctInput = (timestamp: number, entry: Buffer) => Buffer.concat([u8(0), u8(0), u64(timestamp), entry, u16(0)]);
/** §3.4 MerkleTreeLeaf: v1, timestamped_entry. */
const leaf = (timestamp: number, entry: Buffer) => Buffer.concat([u8(0), u8(0), u64(timestamp), entry, u16(0)]);
/** §2.1 Merkle Tree Hash. */
function mth(leaves: Buffer[]): Buffer {
  if (leaves.length === 0) return sha256();
  if (leaves.length === 1) return sha256(u8(0), leaves[0]!);
  let k = 1;
  while (k * 2 < leaves.length) k *= 2;
  return sha256(u8(1), mth(leaves.slice(0, k)), mth(leaves.slice(k)));
}
/** §3.5 tree_hash input. */
const sthInput = (timestamp: number, size: number, root: Buffer) => Buffer.concat([u8(0), u8(1), u64(timestamp), u64(size), root]);
/** DigitallySigned: sha256 (4), ecdsa (3), opaque<2>. */
function unwrapSignature(b64: string): Buffer {
  const b = Buffer.from(b64, 'base64');
  assert.equal(b[0], 4, 'hash algorithm sha256');
  assert.equal(b[1], 3, 'signature algorithm ecdsa');
  assert.equal(b.readUInt16BE(2), b.length - 4);
  return b.subarray(4);
}
/**
 * §3.3 from a final certificate: the SCTs of its embedded list, and the TBS the log signed (the
 * certificate's TBS without the list extension).
 */
function embeddedScts(certDer: Buffer): { tbs: Buffer; scts: { timestamp: number; logId: Buffer; signature: Buffer }[] } {
  const cert = AsnParser.parse(certDer, Certificate);
  const extensions = cert.tbsCertificate.extensions ?? [];
  const list = extensions.find((e) => e.extnID === '1.3.6.1.4.1.11129.2.4.2');
  assert.ok(list, 'the certificate has the embedded SCT list extension');
  const data = Buffer.from(AsnParser.parse(list.extnValue.buffer, OctetString).buffer);
  assert.equal(data.readUInt16BE(0), data.length - 2);
  const scts = [];
  for (let at = 2; at < data.length; ) {
    const sct = data.subarray(at + 2, at + 2 + data.readUInt16BE(at));
    at += 2 + sct.length;
    assert.equal(sct[0], 0, 'SCT v1');
    const extensionsLength = sct.readUInt16BE(41);
    const signed = sct.subarray(43 + extensionsLength);
    scts.push({ logId: sct.subarray(1, 33), timestamp: Number(sct.readBigUInt64BE(33)), signature: unwrapSignature(signed.toString('base64')) });
  }
  const rest = extensions.filter((e) => e !== list);
  cert.tbsCertificate.extensions = rest.length ? new Extensions(rest) : undefined;
  return { tbs: Buffer.from(AsnConvert.serialize(cert.tbsCertificate)), scts };
}
// -------------------------------------------------------------------------------------------

const derOf = (pemFile: string) => Buffer.from(new X509Certificate(readFileSync(pemFile)).raw);

/**
 * One HTTP request on a fresh connection (fetch reuses idle connections, which races the
 * server's keep-alive timeout while a key is being generated).
 */
function http(method: string, url: string, body?: string): Promise<{ status: number; json: Record<string, unknown> }> {
  return new Promise((resolve, reject) => {
    const req = request(url, { method, agent: false, headers: body === undefined ? {} : { 'content-type': 'application/json' } }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode!, json: JSON.parse(Buffer.concat(chunks).toString('utf8')) as Record<string, unknown> }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

interface SctAnswer {
  sct_version: number;
  id: string;
  timestamp: number;
  extensions: string;
  signature: string;
}

describe('CT log front with a threshold log key', function () {
  this.timeout(900_000);
  const up = new UpProcess();
  let base: string;
  let logKey: ReturnType<typeof createPublicKey>;
  let logSpki: Buffer;
  let caCert: string;
  let serverCert: string;
  let keyRef: string;
  let opensslConf: string;
  let csr: string;
  let material: string;
  let logList: string;
  const servers: RunningServer[] = [];
  /** The leaves the log should hold, in order, built here. */
  const expectedLeaves: Buffer[] = [];

  const post = (path: string, body: unknown, raw = false) => http('POST', `${base}/ct/v1/${path}`, raw ? (body as string) : JSON.stringify(body));
  const get = async (path: string) => {
    const r = await http('GET', `${base}/ct/v1/${path}`);
    assert.equal(r.status, 200, JSON.stringify(r.json));
    return r.json as Record<string, number & string>;
  };
  const sctAudits = () => readFileSync(join(up.dir, 'coordinator', 'audit.log'), 'utf8').split('\n').filter((l) => l.includes('"context":"sct"')).length;
  const assertSctVerifies = (sct: SctAnswer, entry: Buffer) => {
    assert.equal(sct.sct_version, 0);
    assert.equal(sct.id, sha256(logSpki).toString('base64'), 'the log id is the SHA-256 of the log key');
    assert.equal(sct.extensions, '');
    assert.ok(verify('sha256', sctInput(sct.timestamp, entry), { key: logKey, dsaEncoding: 'der' }, unwrapSignature(sct.signature)), 'the SCT signature verifies over the RFC 6962 struct');
  };

  /** `cert issue` for the TLS key's CSR, `extra` flags added; the certificate's file. */
  const issue = (file: string, ...extra: string[]) => {
    const r = cli(up.dir, 'cert', 'issue', '--csr', csr, '--days', '30', '--out', file, ...extra);
    assert.equal(r.status, 0, r.stderr);
    return file;
  };

  before(async function () {
    await up.start(['--signers', '3', '--threshold', '2', '--no-tls']);
    base = `http://${up.config().coordinator.http}`;
    // The threshold CA, and the key `tls` (made by up) as nginx's key with a CA certificate.
    const ca = cli(up.dir, 'ca', 'init', '--dns-suffix', 'localhost', '--ip-range', '127.0.0.0/8', '--threshold', '2', '--signers', '3');
    assert.equal(ca.status, 0, ca.stderr);
    caCert = join(up.dir, 'ca', 'root.crt');
    material = join(up.dir, 'ct-test');
    mkdirSync(material);
    opensslConf = join(material, 'openssl.cnf');
    writeFileSync(opensslConf, cli(up.dir, 'openssl-conf').stdout);
    keyRef = join(material, 'tls.key.pem');
    const ref = cli(up.dir, 'key', 'ref', 'tls');
    assert.equal(ref.status, 0, ref.stderr);
    writeFileSync(keyRef, ref.stdout);
    csr = join(material, 'tls.csr');
    const made = spawnSync('bash', [join(REPO, 'certs', 'make-csr.sh'), keyRef, csr, '/CN=localhost', 'DNS:localhost,IP:127.0.0.1'], { encoding: 'utf8', env: { ...process.env, OPENSSL_CONF: opensslConf } });
    assert.equal(made.status, 0, made.stderr);
    serverCert = issue(join(material, 'tls.crt'));
    logList = join(material, 'ctlog.cnf');
  });

  after(async function () {
    for (const s of servers) await s.stop();
    await up.stop();
  });

  it('answers 404 on its routes, and cert issue --ct refuses, until a log is configured', async function () {
    const res = await http('GET', `${base}/ct/v1/get-sth`);
    assert.equal(res.status, 404);
    assert.match(String(res.json.message), /quorumkey ct init/);
    // Nor does cert issue --ct issue anything without a log.
    const refused = cli(up.dir, 'cert', 'issue', '--csr', csr, '--ct', '--out', join(material, 'none.crt'));
    assert.notEqual(refused.status, 0);
    assert.match(refused.stderr, /no CT log is configured .*quorumkey ct init/);
    assert.equal(existsSync(join(material, 'none.crt')), false);
  });

  it('ct init creates the threshold log key (policy sct, client ct-log) and the log serves get-roots', async function () {
    const r = cli(up.dir, 'ct', 'init', '--root', caCert);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /CT log: key 'ct', log id [A-Za-z0-9+/=]{44}, 1 accepted root/);
    const pem = cli(up.dir, 'key', 'show', 'ct', '--pem');
    assert.equal(pem.status, 0, pem.stderr);
    logKey = createPublicKey(pem.stdout);
    logSpki = logKey.export({ type: 'spki', format: 'der' });
    const shown = cli(up.dir, 'key', 'show', 'ct');
    assert.match(shown.stdout, /policy sct /);
    assert.match(shown.stdout, /clients: ct-log/);
    const roots = (await get('get-roots')) as unknown as { certificates: string[] };
    assert.deepEqual(roots.certificates, [derOf(caCert).toString('base64')]);
    // Another key is not taken as the log key.
    const wrong = cli(up.dir, 'ct', 'init', '--key', 'tls', '--root', caCert);
    assert.equal(wrong.status, 2);
    assert.match(wrong.stderr, /key 'tls' has policy tls-server,x509-csr, not sct/);
  });

  it('get-sth of the empty log: tree_size 0, the empty root, signed through the threshold', async function () {
    const sth = await get('get-sth');
    assert.equal(sth.tree_size, 0);
    assert.equal(sth.sha256_root_hash, sha256().toString('base64'));
    assert.ok(verify('sha256', sthInput(sth.timestamp, 0, sha256()), { key: logKey, dsaEncoding: 'der' }, unwrapSignature(sth.tree_head_signature)));
  });

  it('add-chain returns an SCT that verifies with the log key; a resubmission returns it again without signing', async function () {
    const cert = derOf(serverCert);
    const first = await post('add-chain', { chain: [cert.toString('base64')] });
    assert.equal(first.status, 200, JSON.stringify(first.json));
    const sct = first.json as unknown as SctAnswer;
    assertSctVerifies(sct, x509Entry(cert));
    expectedLeaves.push(leaf(sct.timestamp, x509Entry(cert)));
    const audits = sctAudits();
    const again = await post('add-chain', { chain: [cert.toString('base64'), derOf(caCert).toString('base64')] });
    assert.equal(again.status, 200);
    assert.deepEqual(again.json, first.json);
    assert.equal(sctAudits(), audits, 'no second signature for the same entry');
  });

  it('get-sth covers the entry: the root is the Merkle tree hash of the leaf, the signature verifies', async function () {
    const sth = await get('get-sth');
    assert.equal(sth.tree_size, 1);
    assert.equal(sth.sha256_root_hash, mth(expectedLeaves).toString('base64'));
    assert.ok(verify('sha256', sthInput(sth.timestamp, 1, mth(expectedLeaves)), { key: logKey, dsaEncoding: 'der' }, unwrapSignature(sth.tree_head_signature)));
    const audits = sctAudits();
    const again = await get('get-sth');
    assert.deepEqual(again, sth, 'an unchanged tree is not signed again');
    assert.equal(sctAudits(), audits);
    const r = cli(up.dir, 'ct', 'sth');
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /"tree_size":1,.*"signature":"valid"/);
  });

  it('refuses malformed submissions with 400 and a reason', async function () {
    const cert = derOf(serverCert).toString('base64');
    const other = spawnSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-subj', '/CN=not accepted', '-keyout', '/dev/null', '-outform', 'DER', '-days', '2'], {
      env: { ...process.env, OPENSSL_CONF: '/dev/null' },
    });
    assert.equal(other.status, 0, String(other.stderr));
    const cases: [string, unknown, RegExp, boolean?][] = [
      ['add-chain', '{"chain": [', /not valid JSON/, true],
      ['add-chain', [cert], /JSON object/],
      ['add-chain', { chain: [] }, /1 to 8 certificates/],
      ['add-chain', { chain: [cert], extra: 1 }, /unknown field 'extra'/],
      ['add-chain', { chain: ['***'] }, /chain\[0\] is not a base64 string/],
      ['add-chain', { chain: [Buffer.from('not a certificate').toString('base64')] }, /chain\[0\] \(the leaf\) .*(not a DER|does not parse)/],
      ['add-chain', { chain: [other.stdout.toString('base64')] }, /does not end at an accepted root/],
      ['add-chain', { chain: [cert, other.stdout.toString('base64')] }, /chain\[1\].*not a CA|not signed by chain\[1\]/],
      ['add-pre-chain', { chain: [cert] }, /not a precertificate/],
    ];
    for (const [path, body, message, raw] of cases) {
      const r = await post(path, body, raw);
      assert.equal(r.status, 400, `${path} ${JSON.stringify(body).slice(0, 80)}: ${JSON.stringify(r.json)}`);
      assert.equal(r.json.error, 'invalid_input');
      assert.match(String(r.json.message), message);
    }
    assert.equal((await http('POST', `${base}/ct/v1/get-sth`, '{}')).status, 405);
    assert.equal((await http('GET', `${base}/ct/v1/add-chain`)).status, 405);
    assert.equal((await http('GET', `${base}/ct/v1/get-proof-by-hash`)).status, 404);
  });

  it('cert issue --ct: a precertificate through the log, and the certificate carries its SCT', async function () {
    const file = issue(join(material, 'precert-flow.crt'), '--ct');
    const issued = embeddedScts(derOf(file));
    // The SCT covers the precert_entry: issuer key hash and the TBS without the SCT list.
    const issuerKeyHash = sha256(new X509Certificate(readFileSync(caCert)).publicKey.export({ type: 'spki', format: 'der' }));
    assert.equal(issued.scts.length, 1);
    const sct = issued.scts[0]!;
    assert.deepEqual(sct.logId, sha256(logSpki), 'the SCT names the log');
    assert.ok(verify('sha256', sctInput(sct.timestamp, precertEntry(issuerKeyHash, issued.tbs)), { key: logKey, dsaEncoding: 'der' }, sct.signature));
    expectedLeaves.push(leaf(sct.timestamp, precertEntry(issuerKeyHash, issued.tbs)));
    const text = spawnSync('openssl', ['x509', '-in', file, '-noout', '-text'], { encoding: 'utf8', env: { ...process.env, OPENSSL_CONF: '/dev/null' } });
    assert.equal(text.status, 0, text.stderr);
    assert.match(text.stdout, /CT Precertificate SCTs:/);
    assert.match(text.stdout, new RegExp(`Log ID\\s*: ${Buffer.from(sha256(logSpki)).toString('hex').toUpperCase().match(/../g)!.slice(0, 4).join(':')}`));
    const ok = spawnSync('openssl', ['verify', '-CAfile', caCert, file], { encoding: 'utf8', env: { ...process.env, OPENSSL_CONF: '/dev/null' } });
    assert.equal(ok.status, 0, ok.stdout + ok.stderr);
    // The log now holds both entries: the tree head says so.
    const sth = await get('get-sth');
    assert.equal(sth.tree_size, 2);
    assert.equal(sth.sha256_root_hash, mth(expectedLeaves).toString('base64'));
    assert.ok(verify('sha256', sthInput(sth.timestamp, 2, mth(expectedLeaves)), { key: logKey, dsaEncoding: 'der' }, unwrapSignature(sth.tree_head_signature)));
    // nginx serves it: s_client -ct validates the embedded SCT against the log list.
    const list = cli(up.dir, 'ct', 'loglist');
    assert.equal(list.status, 0, list.stderr);
    writeFileSync(logList, list.stdout);
    const nginx = await startNginx({ opensslConf, serverCert: file, keyRef }, 'root root');
    servers.push(nginx);
    assertValidScts(await sClientCt(nginx.port, logList, caCert), 1);
  });

  it('sct serverinfo writes a SERVERINFOV2 file; nginx sends the SCT and s_client -ct validates it', async function () {
    const out = join(material, 'tls.sct.pem');
    const r = cli(up.dir, 'sct', 'serverinfo', '--cert', serverCert, '--out', out);
    assert.equal(r.status, 0, r.stderr);
    assert.match(readFileSync(out, 'utf8'), /^-----BEGIN SERVERINFOV2 FOR /);
    const nginx = await startNginx({ opensslConf, serverCert, keyRef }, 'root root', `ssl_conf_command ServerInfoFile ${out};`);
    servers.push(nginx);
    assertValidScts(await sClientCt(nginx.port, logList, caCert), 1);
  });

  it('get-entries serves the leaves and chains: a monitor recomputes the signed root from them', async function () {
    const sth = await get('get-sth');
    const { entries } = (await get('get-entries?start=0&end=99')) as unknown as { entries: { leaf_input: string; extra_data: string }[] };
    assert.equal(entries.length, sth.tree_size);
    const leaves = entries.map((e) => Buffer.from(e.leaf_input, 'base64'));
    assert.deepEqual(leaves, expectedLeaves);
    assert.equal(mth(leaves).toString('base64'), sth.sha256_root_hash);
    const ca = derOf(caCert);
    const vec3 = (b: Buffer) => Buffer.concat([u24(b.length), b]);
    // x509_entry: certificate_chain (the root the log appended); precert_entry: PrecertChainEntry.
    assert.deepEqual(Buffer.from(entries[0]!.extra_data, 'base64'), vec3(vec3(ca)));
    const precert = Buffer.from(entries[1]!.extra_data, 'base64');
    const preLen = precert.readUIntBE(0, 3);
    assert.deepEqual(precert.subarray(3 + preLen), vec3(vec3(ca)));
    assert.equal(new X509Certificate(precert.subarray(3, 3 + preLen)).issuer, new X509Certificate(readFileSync(caCert)).subject);
    assert.equal(((await get('get-entries?start=1&end=1')) as unknown as { entries: unknown[] }).entries.length, 1);
    for (const [query, message] of [
      ['start=1&end=0', /start 1 is after end 0/],
      ['start=5&end=9', /start 5 is beyond the tree \(size 2\)/],
      ['start=0', /end must be a decimal entry index/],
      ['start=-1&end=2', /start must be a decimal entry index/],
    ] as const) {
      const r = await http('GET', `${base}/ct/v1/get-entries?${query}`);
      assert.equal(r.status, 400, query);
      assert.match(String(r.json.message), message);
    }
  });

  it("signs only while the log key's client list holds ct-log", async function () {
    const fresh = derOf(join(material, 'precert-flow.crt')).toString('base64');
    assert.equal(cli(up.dir, 'key', 'revoke', 'ct', 'ct-log').status, 0);
    const refused = await post('add-chain', { chain: [fresh] });
    assert.equal(refused.status, 403, JSON.stringify(refused.json));
    assert.match(String(refused.json.message), /client 'ct-log' may not use key 'ct'/);
    assert.equal(cli(up.dir, 'key', 'grant', 'ct', 'ct-log').status, 0);
    assert.equal((await get('get-sth')).tree_size, 2, 'nothing was added');
  });

  it('after a restart the log holds its entries, serves the same tree head and issued SCTs, and keeps growing', async function () {
    const before = await get('get-sth');
    const cert = derOf(serverCert).toString('base64');
    const issued = (await post('add-chain', { chain: [cert] })).json;
    for (const s of servers.splice(0)) await s.stop();
    assert.equal(await up.stop(), 0);
    await up.start(['--signers', '3', '--threshold', '2', '--no-tls']);
    base = `http://${up.config().coordinator.http}`;
    const audits = sctAudits();
    assert.deepEqual(await get('get-sth'), before);
    assert.deepEqual((await post('add-chain', { chain: [cert] })).json, issued);
    assert.equal(sctAudits(), audits, 'nothing signed again');
    // A new certificate: a third leaf, and a new tree head over all three.
    const fresh = join(material, 'precert-flow.crt');
    const added = (await post('add-chain', { chain: [derOf(fresh).toString('base64')] })).json as unknown as SctAnswer;
    assertSctVerifies(added, x509Entry(derOf(fresh)));
    expectedLeaves.push(leaf(added.timestamp, x509Entry(derOf(fresh))));
    const sth = await get('get-sth');
    assert.equal(sth.tree_size, 3);
    assert.ok(sth.timestamp > before.timestamp);
    assert.ok(verify('sha256', sthInput(sth.timestamp, 3, mth(expectedLeaves)), { key: logKey, dsaEncoding: 'der' }, unwrapSignature(sth.tree_head_signature)));
  });
});

/**
 * libssl checks an SCT's millisecond timestamp against the session time, which has a resolution of
 * whole seconds (SSL_SESSION_get_time() * 1000): an SCT issued less than a second ago counts as
 * "sct future timestamp". A real client never sees one that young; wait out that second first.
 */
async function sClientCt(port: number, logList: string, caCert: string): Promise<string> {
  await new Promise((resolve) => setTimeout(resolve, 1100));
  const r = spawnSync('openssl', ['s_client', '-connect', `127.0.0.1:${port}`, '-CAfile', caCert, '-verify_return_error', '-tls1_3', '-ct', '-ctlogfile', logList], {
    input: 'Q\n',
    encoding: 'utf8',
    env: { ...process.env, OPENSSL_CONF: '/dev/null' },
    timeout: 60_000,
  });
  assert.equal(r.status, 0, r.stdout + r.stderr);
  return r.stdout + r.stderr;
}

function assertValidScts(output: string, count: number): void {
  assert.match(output, new RegExp(`SCTs present \\(${count}\\)`), output);
  assert.match(output, /^    Log       : quorumkey threshold CT log \(key ct\)$/m, output);
  const statuses = [...output.matchAll(/SCT validation status: (\w+)/g)].map((m) => m[1]);
  assert.deepEqual(statuses, Array(count).fill('valid'), output);
  assert.match(output, /Verify return code: 0 \(ok\)/);
}
