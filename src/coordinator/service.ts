/**
 * The coordinator, assembled: configuration, registry, signers, pools, sign path, servers.
 * main.ts runs it as a process; tests may run it in-process.
 */
import { randomBytes } from 'node:crypto';
import { lstatSync, mkdirSync, unlinkSync } from 'node:fs';
import type { Server as HttpServer } from 'node:http';
import { isAbsolute, join, resolve } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { AuditLog } from '../audit/log.js';
import { auditRotateBytes, DEFAULT_POOL, DEFAULT_REFILL_QUIET_MS, lowWaterOf, paths, readClusterConfig, signerCompute, type ClusterConfig, type PoolConfig } from '../cluster/config.js';
import { loadIdentity } from '../pki/cluster-ca.js';
import { COORDINATOR_GENERATION_BYTES } from '../transport/proto.js';
import { serverCredentials } from '../transport/tls.js';
import { AdminService } from './admin.js';
import { ConflictGraph } from './conflicts.js';
import { bindServer, newSocketServer, newTlsServer, shutdownServer } from './grpc.js';
import { newHttpServer } from './http.js';
import { httpAccessFrom } from './http-access.js';
import { KeyStore } from './keys.js';
import { jsonLogger, type Logger } from './log.js';
import { CoordinatorMetrics } from './metrics.js';
import { PoolSet, quietIn, Refiller, subsetLabel } from './pools.js';
import { Presigner } from './presign.js';
import { SignService, type SignOptions } from './sign.js';
import { SignerRegistry, type PendingShare, type SignerRegistryOptions } from './signers.js';
import { CtService } from '../ct/service.js';
import { ConsoleAccess, consoleTokenFile, ensureConsoleToken } from '../console/access.js';
import { AuditView } from '../console/audit-view.js';
import { IssuedCertificates } from '../console/certificates.js';
import { RateSampler } from '../console/rates.js';
import { ConsoleRoutes } from '../console/routes.js';
import { openSocketTo, prepareSocketDirectory, removeStaleSocket, resolveSocketGroup } from './socket.js';
import { caResponder } from '../pki/ocsp/internal-signer.js';
import { caPaths } from '../pki/ca/store.js';

export const COORDINATOR_IDENTITY = 'coordinator';

export interface CoordinatorOptions {
  dir: string;
  log?: Logger;
  signers?: SignerRegistryOptions;
  sign?: SignOptions;
}

export interface Endpoints {
  socket: string;
  grpc: string;
  /** host:port of the HTTP listener (HTTPS when HTTP signing uses mTLS). */
  http: string;
  /** 'https' when HTTP signing uses mTLS, else 'http'. */
  httpScheme: 'http' | 'https';
}

function splitHostPort(endpoint: string, what: string): { host: string; port: number } {
  const m = /^(.*):(\d{1,5})$/.exec(endpoint);
  if (!m) throw new Error(`${what} '${endpoint}' is not host:port`);
  return { host: m[1]!.replace(/^\[(.*)\]$/, '$1'), port: Number(m[2]) };
}

export function poolConfig(config: ClusterConfig): PoolConfig {
  const pool = { ...DEFAULT_POOL, ...(config.pool ?? {}) };
  for (const [k, v] of Object.entries(pool)) {
    if (!Number.isInteger(v) || v < 0 || v > 100_000) throw new Error(`cluster.json: pool.${k} must be an integer in [0, 100000], got ${JSON.stringify(v)}`);
  }
  if (pool.batch < 1 || pool.batch > 256) throw new Error('cluster.json: pool.batch must be in [1, 256]');
  const { maxPresignBatch } = signerCompute(config);
  if (pool.batch > maxPresignBatch) throw new Error(`cluster.json: pool.batch ${pool.batch} is above what the signers accept (signerCompute.maxPresignBatch ${maxPresignBatch})`);
  const low = lowWaterOf(pool);
  if (low > pool.target || (pool.target > 0 && low < 1)) {
    throw new Error(`cluster.json: pool.lowWater must be between 1 and pool.target (${pool.target}), got ${low}`);
  }
  return pool;
}

export class Coordinator {
  private stopping: Promise<void> | undefined;
  /** Inode of the socket file this coordinator bound. */
  private readonly socketInode: number;

  private constructor(
    readonly config: ClusterConfig,
    readonly endpoints: Endpoints,
    readonly metrics: CoordinatorMetrics,
    readonly keys: KeyStore,
    readonly signers: SignerRegistry,
    readonly pools: PoolSet,
    readonly signService: SignService,
    readonly admin: AdminService,
    private readonly refiller: Refiller,
    private readonly audit: AuditLog,
    private readonly socketServer: grpc.Server,
    private readonly tlsServer: grpc.Server,
    private readonly httpServer: HttpServer,
    private readonly log: Logger,
    private readonly ct: CtService,
  ) {
    this.socketInode = lstatSync(endpoints.socket).ino;
  }

  /** The one stdout line printed when serving. */
  get readyLine(): string {
    return `coordinator ready sign=unix:${this.endpoints.socket} grpc=${this.endpoints.grpc} http=${this.endpoints.httpScheme}://${this.endpoints.http}`;
  }

  static async start(options: CoordinatorOptions): Promise<Coordinator> {
    const log = options.log ?? jsonLogger('coordinator');
    const dir = resolve(options.dir);
    const config = readClusterConfig(dir);
    const pool = poolConfig(config);
    const layout = paths(dir);
    const identity = loadIdentity(layout.pki, COORDINATOR_IDENTITY);
    // Configuration errors of the client doors stop the start before anything runs.
    const httpAccess = httpAccessFrom(config.coordinator.httpSign, dir);
    const socketGroup = config.coordinator.socketGroup ? resolveSocketGroup(config.coordinator.socketGroup) : undefined;
    if (config.coordinator.httpHosts !== undefined && (!Array.isArray(config.coordinator.httpHosts) || !config.coordinator.httpHosts.every((h) => typeof h === 'string'))) {
      throw new Error('cluster.json: coordinator.httpHosts must be a list of host names');
    }
    mkdirSync(layout.coordinator, { recursive: true, mode: 0o700 });
    const consoleToken = await ensureConsoleToken(consoleTokenFile(layout.coordinator));
    const keys = KeyStore.load(join(layout.coordinator, 'keys.json'));
    const metrics = new CoordinatorMetrics();
    metrics.keys.set(keys.list().length);
    // Pair conflicts (conflicts.ts): the hooks keep the pools and the gauges in step; `onConflict`
    // is set once the pools and the refiller exist.
    let onConflict: (keyId: string, cleared: boolean) => void = () => undefined;
    const conflicts = new ConflictGraph({
      added: (c) => {
        metrics.pairConflict.set({ key: c.keyId, a: String(c.a), b: String(c.b) }, 1);
        log.warn('pair conflict: the two signers are not scheduled together for the key', {
          key: c.keyId,
          a: c.a,
          b: c.b,
          reported_by: c.reportedBy,
          reason: c.reason,
          reconcile: `quorumkey signers reconcile --key ${c.keyId} ${c.a} ${c.b}`,
        });
        onConflict(c.keyId, false);
      },
      cleared: (keyId, a, b) => {
        metrics.pairConflict.remove({ key: keyId, a: String(a), b: String(b) });
        log.info('pair conflict cleared: neither signer lists the other as retired', { key: keyId, a, b });
        onConflict(keyId, true);
      },
      blame: (keyId, reporter, peer) => metrics.blames.inc({ key: keyId, reporter: String(reporter), peer: String(peer) }),
    });
    const signers = new SignerRegistry(config, identity, metrics, log, conflicts, options.signers);
    const pools = new PoolSet(
      pool,
      signers,
      {
        depth: (key, subset, depth) => metrics.poolDepth.set({ key, subset }, depth),
        dropped: (key, reason, n) => metrics.presignaturesDropped.inc({ key, reason }, n),
        deferred: () => metrics.refillDeferred.inc(),
      },
      Date.now,
      (keyId, subset) => !conflicts.conflicting(keyId, subset),
    );
    for (const k of keys.list()) {
      for (const i of k.signers) if (!signers.has(i)) throw new Error(`keys.json: key '${k.id}' names signer ${i}, which is not in cluster.json`);
      pools.setKey(k);
      conflicts.setKey(k);
    }
    const sessionMs = Math.max(1000, config.sessionTimeoutMs ?? 30_000);
    // Fresh per start: the signers wipe what they made for the previous coordinator generation.
    const generation = randomBytes(COORDINATOR_GENERATION_BYTES);
    const presigner = new Presigner(signers, metrics, log, (count) => 2 * sessionMs + 100 * count, generation);
    const quietMs = pool.refillQuietMs ?? DEFAULT_REFILL_QUIET_MS;
    const refiller = new Refiller(pools, (job) => presigner.run(job), log, { quietIn: (): number => quietIn(sign.active, sign.lastEndedAt, quietMs, Date.now()) });
    // A record torn by a crash is set aside and the repair recorded: the coordinator comes back.
    const audit = await AuditLog.open(join(layout.coordinator, 'audit.log'), {
      repairTruncatedTail: true,
      rotateBytes: auditRotateBytes(config),
      onCommit: () => metrics.auditCommits.inc(),
    });
    metrics.collectAudit = () => ({ ...audit.head(), root: audit.merkleRoot() });
    const sign = new SignService({ keys, signers, pools, refiller, presigner, conflicts, audit, metrics, log }, options.sign);
    const admin = new AdminService({ config, keys, signers, pools, conflicts, audit, metrics, log });

    const updateQuorum = () => {
      for (const k of keys.list()) metrics.keyQuorum.set({ key: k.id }, sign.quorumError(k) ? 0 : 1);
    };
    metrics.collectKeyQuorum = updateQuorum;
    metrics.collectUsableSubsets = (g) => {
      g.reset();
      for (const k of keys.list()) g.set({ key: k.id }, conflicts.countUsable(k.id, k.signers.filter((i) => signers.healthy(i))));
    };
    onConflict = (keyId, cleared) => {
      if (cleared) pools.resetBackoff(undefined, keyId);
      else pools.dropUnusable(keyId);
      updateQuorum();
      refiller.kick();
    };
    metrics.collectPoolTargets = (g) => {
      g.reset();
      for (const p of pools.info()) g.set({ key: p.keyId, subset: subsetLabel(p.subset) }, p.target);
    };
    signers.on('boot-changed', (i: number) => {
      pools.dropSigner(i);
      refiller.kick();
    });
    // A signer lists a share it sealed but was never told to commit or discard: decide now.
    signers.on('pending', (i: number, pending: PendingShare[]) => void admin.reconcilePending(i, pending));
    signers.on('change', (i: number) => {
      if (signers.healthy(i)) pools.resetBackoff(i);
      updateQuorum();
      refiller.kick();
    });

    const deps = { sign, admin, keys, audit, log, metrics };
    const socketPath = isAbsolute(config.coordinator.socket) ? config.coordinator.socket : resolve(dir, config.coordinator.socket || layout.socket);
    const socketServer = newSocketServer(deps);
    const tlsServer = newTlsServer(deps);
    const ct = new CtService({ clusterDir: dir, sign, keys, log });
    const rates = new RateSampler(metrics);
    const issuedCertificates = new IssuedCertificates(caPaths(layout.root));
    const consoleRoutes = new ConsoleRoutes({
      access: new ConsoleAccess(consoleToken),
      admin,
      keys,
      audit,
      auditView: new AuditView(join(layout.coordinator, 'audit.log'), () => audit.head()),
      rates: () => rates.history(),
      poolBatch: pool.batch,
      poolLowWater: lowWaterOf(pool),
      auditRotateBytes: auditRotateBytes(config),
      certificates: () => issuedCertificates.current(),
      log,
    });
    const httpServer = newHttpServer({ ...deps, ct, ca: caResponder(dir, sign, log), console: consoleRoutes }, { access: httpAccess, hosts: config.coordinator.httpHosts, tls: identity });
    httpServer.once('close', () => rates.stop());
    const closeAll = async () => {
      socketServer.forceShutdown();
      tlsServer.forceShutdown();
      httpServer.close();
      signers.stop();
      await ct.close();
      await audit.close();
    };
    try {
      await removeStaleSocket(socketPath);
      prepareSocketDirectory(socketPath, dir, socketGroup, log);
      await bindServer(socketServer, `unix:${socketPath}`, grpc.ServerCredentials.createInsecure());
      openSocketTo(socketPath, socketGroup);
      const grpcEp = splitHostPort(config.coordinator.grpc, 'coordinator.grpc');
      const grpcPort = await bindServer(tlsServer, config.coordinator.grpc, serverCredentials(identity));
      const httpEp = splitHostPort(config.coordinator.http, 'coordinator.http');
      if (httpEp.host !== '127.0.0.1' && httpEp.host !== 'localhost') {
        log.warn('coordinator.http names a non-loopback host; binding 127.0.0.1 only', { configured: config.coordinator.http });
      }
      const httpPort = await new Promise<number>((res, rej) => {
        httpServer.once('error', rej);
        httpServer.listen(httpEp.port, '127.0.0.1', () => {
          httpServer.off('error', rej);
          const addr = httpServer.address();
          res(typeof addr === 'object' && addr ? addr.port : httpEp.port);
        });
      });
      const endpoints: Endpoints = {
        socket: socketPath,
        grpc: `${grpcEp.host}:${grpcPort}`,
        http: `127.0.0.1:${httpPort}`,
        httpScheme: httpAccess.mode === 'mtls' ? 'https' : 'http',
      };
      const c = new Coordinator(config, endpoints, metrics, keys, signers, pools, sign, admin, refiller, audit, socketServer, tlsServer, httpServer, log, ct);
      // Know the signers' state before declaring readiness (bounded: down signers fail fast).
      signers.start();
      await Promise.race([signers.probeAll(), new Promise((r) => setTimeout(r, 3000).unref())]);
      refiller.start();
      rates.start();
      updateQuorum();
      log.info('coordinator serving', {
        socket: socketPath,
        grpc: endpoints.grpc,
        http: endpoints.http,
        socket_group: socketGroup ? `${socketGroup.name} (gid ${socketGroup.gid})` : 'none (owner only)',
        http_sign: httpAccess.mode === 'token' ? `token (${httpAccess.tokenFile})` : httpAccess.mode,
        keys: keys.list().map((k) => k.id),
        signers: signers.indices,
        pool,
        generation: generation.toString('hex'),
        pools: keys.list().map((k) => ({ key: k.id, subsets: pools.ranked(k.id).map(subsetLabel) })),
      });
      return c;
    } catch (e) {
      await closeAll().catch(() => undefined);
      throw e;
    }
  }

  /** Drains: stop accepting, let in-flight requests finish (bounded), stop refills, close the audit log. */
  stop(graceMs = 10_000): Promise<void> {
    this.stopping ??= (async () => {
      this.log.info('coordinator draining', { active_signs: this.signService.active });
      // No new presign batch from here: a successor's generation may already be at the signers.
      const refillStopped = this.refiller.stop();
      const httpClosed = new Promise<void>((res) => this.httpServer.close(() => res()));
      this.httpServer.closeIdleConnections();
      await Promise.all([shutdownServer(this.socketServer, graceMs), shutdownServer(this.tlsServer, graceMs)]);
      await Promise.race([this.signService.idle(), new Promise((r) => setTimeout(r, graceMs).unref())]);
      this.httpServer.closeAllConnections();
      await httpClosed;
      await Promise.race([refillStopped, new Promise((r) => setTimeout(r, Math.min(graceMs, 5000)).unref())]);
      this.signers.stop();
      await this.ct.close();
      await this.audit.close();
      // Remove the socket file only if it is still ours: a successor coordinator may already
      // have bound the same path while this one drained.
      try {
        const now = lstatSync(this.endpoints.socket);
        if (now.ino === this.socketInode) unlinkSync(this.endpoints.socket);
      } catch {
        /* already gone */
      }
      this.log.info('coordinator stopped', { audit_records: this.audit.head().seq });
    })();
    return this.stopping;
  }
}
