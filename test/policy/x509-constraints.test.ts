/**
 * X.509 constraints against TBSCertificates cut out of certificates the openssl binary issues
 * (`openssl ca`, so validity dates are exact and extensions are only those asked for). What
 * openssl will not produce (a duplicate extension, trailing or non-minimal bytes) is made by
 * re-encoding an openssl TBSCertificate with the small DER helpers below.
 */
import { strict as assert } from 'node:assert';
import { execFileSync } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { _der } from '../../src/policy/classify.js';
import { normaliseKeyPolicy, type X509Constraints } from '../../src/policy/key-policy.js';
import {
  checkCertificateConstraints,
  formatIpAddress,
  ipInRange,
  parseIpAddress,
  parseIpRange,
  rangeNetwork,
  type ConstraintResult,
} from '../../src/policy/x509-constraints.js';

// ---------------------------------------------------------------------------------------------
// DER helpers (independent of the code under test).

/** The TLVs inside the outer TLV of `buf` (the classifier's strict DER reader). */
function children(buf: Buffer): Buffer[] {
  const outer = _der.whole(buf, buf[0]!);
  return _der.children(outer).map((c) => Buffer.from(outer.bytes.subarray(c.start, c.end)));
}

function tlv(tag: number, ...parts: Buffer[]): Buffer {
  const body = Buffer.concat(parts);
  const n = body.length;
  const len = n < 0x80 ? [n] : n < 0x100 ? [0x81, n] : [0x82, n >> 8, n & 0xff];
  return Buffer.concat([Buffer.from([tag, ...len]), body]);
}

/** The TBSCertificate with its extensions replaced by `edit(extensions)`. */
function withExtensions(tbs: Buffer, edit: (exts: Buffer[]) => Buffer[]): Buffer {
  return tlv(0x30, ...children(tbs).map((item) => (item[0] === 0xa3 ? tlv(0xa3, tlv(0x30, ...edit(children(children(item)[0]!)))) : item)));
}

// ---------------------------------------------------------------------------------------------
// openssl fixture.

const CA_CONFIG = `[ca]
default_ca = qk
[qk]
database = index.txt
serial = serial
new_certs_dir = .
default_md = sha256
policy = anything
unique_subject = no
copy_extensions = none
[anything]
commonName = optional
`;

interface Issue {
  subject?: string;
  /** Extension config lines (openssl x509v3_config); none at all makes a v1 certificate. */
  ext?: string[];
  start?: string;
  end?: string;
}

class Openssl {
  readonly dir = mkdtempSync(join(tmpdir(), 'qk-x509c-'));
  private count = 0;

  constructor() {
    this.run(['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', 'ca.key', '-out', 'ca.crt', '-subj', '/CN=Test CA', '-days', '2']);
    this.run(['req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', 'leaf.key', '-out', 'leaf.csr', '-subj', '/CN=placeholder']);
    writeFileSync(join(this.dir, 'ca.cnf'), CA_CONFIG);
    writeFileSync(join(this.dir, 'index.txt'), '');
    writeFileSync(join(this.dir, 'serial'), '01\n');
  }

  run(args: string[]): void {
    execFileSync('openssl', args, { cwd: this.dir, stdio: ['ignore', 'ignore', 'pipe'] });
  }

  /** Issues a certificate and returns its TBSCertificate DER. */
  tbs(o: Issue = {}): Buffer {
    const n = ++this.count;
    const args = ['ca', '-config', 'ca.cnf', '-batch', '-notext', '-preserveDN', '-utf8', '-cert', 'ca.crt', '-keyfile', 'ca.key', '-in', 'leaf.csr', '-out', `c${n}.pem`];
    args.push('-subj', o.subject ?? '/CN=www.example.com', '-startdate', o.start ?? '20250101000000Z', '-enddate', o.end ?? '20250401000000Z');
    if (o.ext?.length) {
      writeFileSync(join(this.dir, `c${n}.ext`), `${o.ext.join('\n')}\n`);
      args.push('-extfile', `c${n}.ext`);
    }
    this.run(args);
    return children(Buffer.from(new X509Certificate(readFileSync(join(this.dir, `c${n}.pem`))).raw))[0]!;
  }

  close(): void {
    rmSync(this.dir, { recursive: true, force: true });
  }
}

// ---------------------------------------------------------------------------------------------

const SERVER_EXT = ['basicConstraints=critical,CA:FALSE', 'keyUsage=critical,digitalSignature', 'extendedKeyUsage=serverAuth'];

function constraints(over: Partial<X509Constraints> = {}): X509Constraints {
  const policy = normaliseKeyPolicy({
    contexts: ['x509-cert'],
    x509: { dnsSuffixes: ['example.com'], ipRanges: ['10.0.0.0/8', '2001:db8::/32'], maxValidityDays: 90, allowCa: false, extendedKeyUsages: ['serverAuth'], ...over },
  });
  return policy.x509!;
}

function refused(r: ConstraintResult, reason: string, ...mentions: string[]): void {
  assert.equal(r.ok, false, `expected ${reason}, got ${JSON.stringify(r)}`);
  if (r.ok) return;
  assert.equal(r.reason, reason, r.message);
  for (const m of mentions) assert.ok(r.message.includes(m), `message ${JSON.stringify(r.message)} should mention ${m}`);
}

function allowed(r: ConstraintResult, names: string[]): void {
  assert.deepEqual(r, { ok: true, names });
}

describe('x509 constraints', () => {
  let ssl: Openssl;
  /** A server certificate with these SANs, by default with no CN (so `names` are the SANs). */
  const server = (sans: string, o: Issue = {}) => ssl.tbs({ subject: '/O=Example', ext: [...SERVER_EXT, `subjectAltName=${sans}`], ...o });

  before(() => {
    ssl = new Openssl();
  });
  after(() => ssl.close());

  describe('positive controls', () => {
    it('allows a 90-day serverAuth certificate for names under example.com', () => {
      const tbs = server('DNS:www.example.com,DNS:example.com,DNS:a.b.example.com', { subject: '/C=DE/O=Example/CN=www.example.com' });
      allowed(checkCertificateConstraints(tbs, constraints()), ['www.example.com', 'example.com', 'a.b.example.com']);
    });

    it('allows a CA certificate when allowCa is set, and refuses the same one otherwise', () => {
      const tbs = ssl.tbs({ subject: '/CN=Example Issuing CA', ext: ['basicConstraints=critical,CA:TRUE,pathlen:0', 'keyUsage=critical,keyCertSign,cRLSign'] });
      allowed(checkCertificateConstraints(tbs, constraints({ allowCa: true })), []);
      refused(checkCertificateConstraints(tbs, constraints()), 'ca-not-allowed', 'cA TRUE');
    });

    it('lowercases names, drops one trailing dot, and reports the names it checked once each', () => {
      const tbs = server('DNS:WWW.EXAMPLE.COM,DNS:api.example.com.', { subject: '/CN=WWW.Example.Com' });
      allowed(checkCertificateConstraints(tbs, constraints()), ['www.example.com', 'api.example.com']);
      // Suffixes are normalised by the policy (uppercase accepted, stored lowercase).
      allowed(checkCertificateConstraints(server('DNS:www.example.com'), constraints({ dnsSuffixes: ['EXAMPLE.com'] })), ['www.example.com']);
    });

    it('does not check a CN that is no host name', () => {
      allowed(checkCertificateConstraints(server('DNS:www.example.com', { subject: '/O=Example, Inc./CN=Example Web Server' }), constraints()), ['www.example.com']);
      allowed(checkCertificateConstraints(server('DNS:www.example.com', { subject: '/CN=ops@other.example' }), constraints()), ['www.example.com']);
    });

    it('allows a dotted-OID extended key usage named in the policy', () => {
      const tbs = ssl.tbs({ ext: ['extendedKeyUsage=serverAuth,1.3.6.1.4.1.99999.7', 'subjectAltName=DNS:www.example.com'] });
      allowed(checkCertificateConstraints(tbs, constraints({ extendedKeyUsages: ['serverAuth', '1.3.6.1.4.1.99999.7'] })), ['www.example.com']);
      refused(checkCertificateConstraints(tbs, constraints()), 'eku-not-allowed', '1.3.6.1.4.1.99999.7');
    });
  });

  describe('dns-name-not-permitted', () => {
    it('refuses a subject CN outside the suffixes even when every SAN is inside', () => {
      refused(checkCertificateConstraints(server('DNS:www.example.com', { subject: '/CN=www.bank.example' }), constraints()), 'dns-name-not-permitted', 'subject CN', 'www.bank.example');
    });

    it('refuses example.com.evil.net and evilexample.com under example.com', () => {
      refused(checkCertificateConstraints(server('DNS:example.com.evil.net'), constraints()), 'dns-name-not-permitted', 'example.com.evil.net');
      refused(checkCertificateConstraints(server('DNS:evilexample.com'), constraints()), 'dns-name-not-permitted', 'evilexample.com');
      refused(checkCertificateConstraints(server('DNS:www.example.com,DNS:com'), constraints()), 'dns-name-not-permitted', '"com"');
    });

    it('refuses every name when no suffix is permitted', () => {
      refused(checkCertificateConstraints(server('DNS:www.example.com'), constraints({ dnsSuffixes: [] })), 'dns-name-not-permitted', 'none');
    });

    it('a CN that looks like a host name must be a valid permitted one', () => {
      refused(checkCertificateConstraints(server('DNS:www.example.com', { subject: '/CN=www.bücher.example.com' }), constraints()), 'dns-name-not-permitted', 'not a host name');
      refused(checkCertificateConstraints(server('DNS:www.example.com', { subject: '/CN=my_host.example.com' }), constraints()), 'dns-name-not-permitted', 'not a host name');
      // U+212A KELVIN SIGN lowercases to "k" in Unicode; only ASCII letters are case-folded here.
      const kelvin = server('DNS:www.kexample.com', { subject: '/CN=www.\u212Aexample.com' });
      refused(checkCertificateConstraints(kelvin, constraints({ dnsSuffixes: ['kexample.com'] })), 'dns-name-not-permitted', 'subject CN', 'not a host name');
    });

    it('refuses a dNSName with an embedded NUL or other non-LDH bytes', () => {
      // SAN { dNSName "www.bank.example\0.example.com" }, via a raw DER extension.
      const name = Buffer.from('www.bank.example\0.example.com', 'latin1');
      const der = tlv(0x30, tlv(0x82, name)).toString('hex');
      const tbs = ssl.tbs({ ext: [...SERVER_EXT, `2.5.29.17=DER:${der}`] });
      refused(checkCertificateConstraints(tbs, constraints()), 'dns-name-not-permitted', '\\u0000');
      refused(checkCertificateConstraints(server('DNS:-www.example.com'), constraints()), 'dns-name-not-permitted', 'not a host name');
    });
  });

  describe('wildcards', () => {
    it('allows *.R exactly when R is permitted', () => {
      allowed(checkCertificateConstraints(server('DNS:*.example.com'), constraints()), ['*.example.com']);
      allowed(checkCertificateConstraints(server('DNS:*.Shop.Example.COM'), constraints()), ['*.shop.example.com']);
      refused(checkCertificateConstraints(server('DNS:www.example.com,DNS:*.com'), constraints({ dnsSuffixes: ['example.com'] })), 'dns-name-not-permitted', '*.com');
      refused(checkCertificateConstraints(server('DNS:*.example.com'), constraints({ dnsSuffixes: ['www.example.com'] })), 'dns-name-not-permitted', 'a wildcard under example.com');
    });

    it('refuses a wildcard that is not the whole leftmost label above two labels', () => {
      for (const bad of ['w*.example.com', 'www.*.example.com', '*.*.example.com', '*', '*.com']) {
        refused(checkCertificateConstraints(server(`DNS:${bad}`), constraints({ dnsSuffixes: ['com'] })), 'dns-name-not-permitted', bad);
      }
    });

    it('checks a wildcard CN like a wildcard SAN', () => {
      allowed(checkCertificateConstraints(server('DNS:*.example.com', { subject: '/CN=*.example.com' }), constraints()), ['*.example.com']);
      refused(checkCertificateConstraints(server('DNS:*.example.com', { subject: '/CN=*.bank.example' }), constraints()), 'dns-name-not-permitted', 'subject CN');
    });
  });

  describe('ip-not-permitted', () => {
    it('IPv4 in and out of range', () => {
      allowed(checkCertificateConstraints(server('IP:10.1.2.3'), constraints()), ['10.1.2.3']);
      refused(checkCertificateConstraints(server('IP:11.1.2.3'), constraints()), 'ip-not-permitted', '11.1.2.3', '10.0.0.0/8');
      allowed(checkCertificateConstraints(server('IP:192.168.7.255'), constraints({ ipRanges: ['192.168.7.0/24'] })), ['192.168.7.255']);
      refused(checkCertificateConstraints(server('IP:192.168.8.0'), constraints({ ipRanges: ['192.168.7.0/24'] })), 'ip-not-permitted', '192.168.8.0');
    });

    it('IPv6 in and out of range', () => {
      allowed(checkCertificateConstraints(server('IP:2001:db8:0:0:0:0:0:1'), constraints()), ['2001:db8::1']);
      refused(checkCertificateConstraints(server('IP:2001:db9::1'), constraints()), 'ip-not-permitted', '2001:db9::1');
      // An IPv4-mapped IPv6 address is a 16-byte address: IPv4 ranges do not cover it.
      refused(checkCertificateConstraints(server('IP:::ffff:10.1.2.3'), constraints()), 'ip-not-permitted', '::ffff:a01:203');
    });

    it('refuses every address when no range is permitted', () => {
      refused(checkCertificateConstraints(server('DNS:www.example.com,IP:10.1.2.3'), constraints({ ipRanges: [] })), 'ip-not-permitted', 'none');
    });

    it('checks a CN that is an IP literal', () => {
      allowed(checkCertificateConstraints(server('IP:10.9.9.9', { subject: '/CN=10.9.9.9' }), constraints()), ['10.9.9.9']);
      refused(checkCertificateConstraints(server('IP:10.9.9.9', { subject: '/CN=192.0.2.1' }), constraints()), 'ip-not-permitted', 'subject CN', '192.0.2.1');
      refused(checkCertificateConstraints(server('IP:10.9.9.9', { subject: '/CN=2001:db9::5' }), constraints()), 'ip-not-permitted', '2001:db9::5');
    });

    it('refuses an iPAddress that is neither 4 nor 16 bytes as malformed', () => {
      for (const bytes of [5, 8, 0]) {
        const der = tlv(0x30, tlv(0x87, Buffer.alloc(bytes, 10))).toString('hex');
        refused(checkCertificateConstraints(ssl.tbs({ ext: [...SERVER_EXT, `2.5.29.17=DER:${der}`] }), constraints()), 'malformed-certificate', 'not a 4- or 16-byte address');
      }
    });
  });

  describe('name-not-permitted', () => {
    it('refuses SAN name types other than dNSName and iPAddress', () => {
      const cases: Array<[string, string]> = [
        ['email:ops@example.com', 'rfc822Name'],
        ['URI:https://www.example.com/', 'uniformResourceIdentifier'],
        ['otherName:1.3.6.1.4.1.311.20.2.3;UTF8:ops@example.com', 'otherName'],
        ['RID:1.2.3.4', 'registeredID'],
        ['dirName:dir_sect', 'directoryName'],
      ];
      for (const [san, type] of cases) {
        const tbs = ssl.tbs({ ext: [...SERVER_EXT, `subjectAltName=DNS:www.example.com,${san}`, '[dir_sect]', 'CN=www.example.com'] });
        refused(checkCertificateConstraints(tbs, constraints()), 'name-not-permitted', type);
      }
    });

    it('refuses a subject CN with a control character', () => {
      refused(checkCertificateConstraints(server('DNS:www.example.com', { subject: '/CN=www.example.com\u0001evil' }), constraints()), 'name-not-permitted', 'control character', '\\u0001');
    });
  });

  describe('validity-too-long', () => {
    it('allows exactly maxValidityDays and refuses one second more (UTCTime)', () => {
      allowed(checkCertificateConstraints(server('DNS:www.example.com', { start: '20250101000000Z', end: '20250401000000Z' }), constraints()), ['www.example.com']);
      refused(checkCertificateConstraints(server('DNS:www.example.com', { start: '20250101000000Z', end: '20250401000001Z' }), constraints()), 'validity-too-long', '90.00001 days', 'at most 90 days');
    });

    it('reads GeneralizedTime, and UTCTime 49 as 2049', () => {
      // notBefore is UTCTime 491231000000Z, notAfter GeneralizedTime 20500101000000Z: one day.
      const mixed = server('DNS:www.example.com', { start: '20491231000000Z', end: '20500101000000Z' });
      assert.ok(mixed.includes(Buffer.from('491231000000Z')) && mixed.includes(Buffer.from('20500101000000Z')));
      allowed(checkCertificateConstraints(mixed, constraints({ maxValidityDays: 1 })), ['www.example.com']);
      const general = server('DNS:www.example.com', { start: '20510101000000Z', end: '20510403000000Z' });
      refused(checkCertificateConstraints(general, constraints()), 'validity-too-long', '92 days');
      allowed(checkCertificateConstraints(general, constraints({ maxValidityDays: 92 })), ['www.example.com']);
    });

    it('refuses notAfter before notBefore as malformed', () => {
      refused(checkCertificateConstraints(server('DNS:www.example.com', { start: '20250301000000Z', end: '20250101000000Z' }), constraints()), 'malformed-certificate', 'notAfter is before notBefore');
    });
  });

  describe('ca-not-allowed', () => {
    it('refuses keyCertSign or cRLSign on a certificate that is not a CA', () => {
      for (const ku of ['keyCertSign', 'cRLSign']) {
        const tbs = ssl.tbs({ ext: ['basicConstraints=CA:FALSE', `keyUsage=digitalSignature,${ku}`, 'extendedKeyUsage=serverAuth', 'subjectAltName=DNS:www.example.com'] });
        refused(checkCertificateConstraints(tbs, constraints()), 'ca-not-allowed', ku);
        allowed(checkCertificateConstraints(tbs, constraints({ allowCa: true })), ['www.example.com']);
      }
    });

    it('reads keyUsage bits from the bytes, whatever the BIT STRING length', () => {
      // keyCertSign (bit 5) in a 9-byte BIT STRING: as a number it would be beyond 2^53.
      const long = tlv(0x03, Buffer.from([0x00, 0x84, 0, 0, 0, 0, 0, 0, 0, 0x01])).toString('hex');
      const tbs = ssl.tbs({ ext: ['extendedKeyUsage=serverAuth', `keyUsage=DER:${long}`, 'subjectAltName=DNS:www.example.com'] });
      refused(checkCertificateConstraints(tbs, constraints()), 'ca-not-allowed', 'keyCertSign');
    });
  });

  describe('extended key usage', () => {
    it('eku-not-allowed names the purpose that is not allowed', () => {
      refused(checkCertificateConstraints(ssl.tbs({ ext: ['extendedKeyUsage=codeSigning', 'subjectAltName=DNS:www.example.com'] }), constraints()), 'eku-not-allowed', 'codeSigning (1.3.6.1.5.5.7.3.3)');
      refused(checkCertificateConstraints(ssl.tbs({ ext: ['extendedKeyUsage=serverAuth,clientAuth', 'subjectAltName=DNS:www.example.com'] }), constraints()), 'eku-not-allowed', 'clientAuth');
      const any = ssl.tbs({ ext: ['extendedKeyUsage=anyExtendedKeyUsage', 'subjectAltName=DNS:www.example.com'] });
      refused(checkCertificateConstraints(any, constraints()), 'eku-not-allowed', 'anyExtendedKeyUsage');
      allowed(checkCertificateConstraints(any, constraints({ extendedKeyUsages: ['anyExtendedKeyUsage'] })), ['www.example.com']);
    });

    it('a name in the policy allows its OID and an OID its name', () => {
      const both = ssl.tbs({ ext: ['extendedKeyUsage=serverAuth,clientAuth', 'subjectAltName=DNS:www.example.com'] });
      allowed(checkCertificateConstraints(both, constraints({ extendedKeyUsages: ['1.3.6.1.5.5.7.3.1', 'clientAuth'] })), ['www.example.com']);
    });

    it('eku-missing for an end-entity certificate without extendedKeyUsage (also v1), not for a CA', () => {
      refused(checkCertificateConstraints(ssl.tbs({ ext: ['basicConstraints=CA:FALSE', 'subjectAltName=DNS:www.example.com'] }), constraints()), 'eku-missing', 'every purpose');
      const v1 = ssl.tbs({ subject: '/CN=www.example.com' });
      assert.equal(children(v1)[0]![0], 0x02, 'a v1 TBSCertificate starts with the serial');
      refused(checkCertificateConstraints(v1, constraints()), 'eku-missing');
      const ca = ssl.tbs({ subject: '/CN=Example CA', ext: ['basicConstraints=critical,CA:TRUE'] });
      allowed(checkCertificateConstraints(ca, constraints({ allowCa: true })), []);
    });
  });

  describe('malformed-certificate', () => {
    let good: Buffer;
    before(() => {
      good = server('DNS:www.example.com');
      allowed(checkCertificateConstraints(good, constraints()), ['www.example.com']);
    });

    it('refuses bytes that are no TBSCertificate', () => {
      for (const bad of [Buffer.alloc(0), Buffer.from([0x30]), Buffer.from('hello'), good.subarray(0, good.length - 1), tlv(0x30, good)]) {
        refused(checkCertificateConstraints(bad, constraints()), 'malformed-certificate');
      }
    });

    it('refuses a whole Certificate (TBS + algorithm + signature)', () => {
      const der = Buffer.from(new X509Certificate(readFileSync(join(ssl.dir, 'ca.crt'))).raw);
      refused(checkCertificateConstraints(der, constraints({ allowCa: true })), 'malformed-certificate');
    });

    it('refuses trailing bytes and non-minimal lengths (the DER re-encoding check)', () => {
      refused(checkCertificateConstraints(Buffer.concat([good, Buffer.from([0])]), constraints()), 'malformed-certificate', 'not DER');
      const body = children(good);
      const n = Buffer.concat(body).length;
      const longForm = Buffer.concat([Buffer.from([0x30, 0x83, n >> 16, (n >> 8) & 0xff, n & 0xff]), ...body]);
      refused(checkCertificateConstraints(longForm, constraints()), 'malformed-certificate', 'not DER');
    });

    it('refuses BER inside an extension: BOOLEAN TRUE as 0x01, trailing bytes in subjectAltName', () => {
      const berTrue = ssl.tbs({ ext: ['basicConstraints=DER:3003010101', 'extendedKeyUsage=serverAuth'] });
      refused(checkCertificateConstraints(berTrue, constraints({ allowCa: true })), 'malformed-certificate', 'basicConstraints is not DER');
      const san = Buffer.concat([tlv(0x30, tlv(0x82, Buffer.from('www.example.com'))), tlv(0x30, tlv(0x82, Buffer.from('www.bank.example')))]);
      refused(checkCertificateConstraints(ssl.tbs({ ext: [...SERVER_EXT, `2.5.29.17=DER:${san.toString('hex')}`] }), constraints()), 'malformed-certificate', 'subjectAltName is not DER');
    });

    it('refuses an empty subjectAltName or extendedKeyUsage', () => {
      refused(checkCertificateConstraints(ssl.tbs({ ext: ['extendedKeyUsage=DER:3000', 'subjectAltName=DNS:www.example.com'] }), constraints()), 'malformed-certificate', 'extendedKeyUsage is empty');
      refused(checkCertificateConstraints(ssl.tbs({ ext: [...SERVER_EXT, 'subjectAltName=DER:3000'] }), constraints()), 'malformed-certificate', 'subjectAltName is empty');
    });

    it('refuses a subject CN that is no DirectoryString', () => {
      // subject: CN as an OCTET STRING, which a matcher could still read as text.
      const cn = tlv(0x30, tlv(0x31, tlv(0x30, Buffer.from([0x06, 0x03, 0x55, 0x04, 0x03]), tlv(0x04, Buffer.from('www.bank.example')))));
      const items = children(good);
      assert.equal(items[5]![0], 0x30, 'the subject Name');
      const tbs = tlv(0x30, ...items.slice(0, 5), cn, ...items.slice(6));
      refused(checkCertificateConstraints(tbs, constraints()), 'malformed-certificate', 'CN is not a DirectoryString');
    });

    it('refuses a duplicate extension', () => {
      const sanOf = (names: string) => children(children(server(names)).find((t) => t[0] === 0xa3)!).flatMap((s) => children(s)).find((e) => e.includes(Buffer.from([0x06, 0x03, 0x55, 0x1d, 0x11])))!;
      const second = sanOf('DNS:www.bank.example');
      const dup = withExtensions(good, (exts) => [...exts, second]);
      refused(checkCertificateConstraints(dup, constraints()), 'malformed-certificate', '2.5.29.17 appears more than once');
    });
  });

  it('never throws on corrupted certificates', () => {
    const tbs = server('DNS:www.example.com,IP:10.1.2.3', { subject: '/CN=www.example.com' });
    let seed = 1;
    const random = () => ((seed = (seed * 1103515245 + 12345) & 0x7fffffff) / 0x7fffffff);
    for (let k = 0; k < 500; k++) {
      const bad = Buffer.from(tbs);
      for (let flips = 1 + Math.floor(random() * 3); flips > 0; flips--) bad[Math.floor(random() * bad.length)] = Math.floor(random() * 256);
      const r = checkCertificateConstraints(bad, constraints());
      assert.ok(r.ok || typeof r.message === 'string');
    }
  });
});

describe('IP address and range helpers', () => {
  it('parses IPv4 strictly', () => {
    assert.deepEqual(parseIpAddress('10.1.2.3'), Uint8Array.from([10, 1, 2, 3]));
    for (const bad of ['10.1.2', '10.1.2.3.4', '010.1.2.3', '256.1.2.3', '10.1.2.3 ', '1e1.1.1.1', '']) assert.equal(parseIpAddress(bad), undefined, bad);
  });

  it('parses the IPv6 text forms and formats them per RFC 5952', () => {
    const cases: Array<[string, string]> = [
      ['2001:DB8:0:0:0:0:0:1', '2001:db8::1'],
      ['::', '::'],
      ['::1', '::1'],
      ['1::', '1::'],
      ['2001:db8:0:0:1:0:0:1', '2001:db8::1:0:0:1'],
      ['2001:0:0:1:0:0:0:1', '2001:0:0:1::1'],
      ['2001:db8:1:2:3:4:5:6', '2001:db8:1:2:3:4:5:6'],
      ['2001:db8::0:1', '2001:db8::1'],
      ['::ffff:192.0.2.1', '::ffff:c000:201'],
    ];
    for (const [text, canonical] of cases) assert.equal(formatIpAddress(parseIpAddress(text)!), canonical, text);
    for (const bad of [':::', '1:2:3:4:5:6:7', '1:2:3:4:5:6:7:8:9', '1::2::3', '12345::', 'g::', '1.2.3.4::', '::1.2.3', 'fe80::1%eth0', '1:2:3:4:5:6:7::8']) {
      assert.equal(parseIpAddress(bad), undefined, bad);
    }
  });

  it('matches ranges bit by bit, never across families', () => {
    const r = parseIpRange('10.128.0.0/9')!;
    assert.ok(ipInRange(parseIpAddress('10.255.255.255')!, r));
    assert.ok(!ipInRange(parseIpAddress('10.127.255.255')!, r));
    assert.ok(ipInRange(parseIpAddress('1.2.3.4')!, parseIpRange('0.0.0.0/0')!));
    assert.ok(!ipInRange(parseIpAddress('::ffff:1.2.3.4')!, parseIpRange('0.0.0.0/0')!));
    assert.ok(ipInRange(parseIpAddress('2001:db8:ffff::1')!, parseIpRange('2001:db8::/32')!));
    assert.ok(!ipInRange(parseIpAddress('2001:db9::')!, parseIpRange('2001:db8::/32')!));
    assert.ok(ipInRange(parseIpAddress('10.1.2.3')!, parseIpRange('10.1.2.3/32')!));
    assert.ok(!ipInRange(parseIpAddress('10.1.2.4')!, parseIpRange('10.1.2.3/32')!));
    assert.equal(formatIpAddress(rangeNetwork(parseIpRange('2001:db8:abcd::1/33')!)), '2001:db8:8000::');
    for (const bad of ['10.0.0.0/33', '::/129', '10.0.0.0', '10.0.0.0/', '10.0.0.0/08', '/8']) assert.equal(parseIpRange(bad), undefined, bad);
  });
});
