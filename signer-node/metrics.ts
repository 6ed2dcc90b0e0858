/**
 * Prometheus metrics of one signer node (prom-client, own Registry). Names are
 * `quorumkey_signer_*` with the unit in the name. Labels carry only public values: key ids,
 * protocol names, abort reasons, peer indices, gRPC method and status names.
 */
import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import { registerProcessMetrics } from '../src/metrics/process.js';

export interface KeyGaugeSource {
  /** (key id, epoch, presignatures in memory) for every key this signer holds. */
  keys(): { keyId: string; epoch: number; presignatures: number }[];
  retiredPairs(): { keyId: string; peer: number }[];
  pendingMessages(): number;
  runningSessions(): number;
  /** Operations posted to the compute thread and not answered yet. */
  computeBacklog(): number;
}

export class SignerMetrics {
  readonly registry = new Registry();
  readonly sessions: Counter<'protocol' | 'result'>;
  readonly sessionAborts: Counter<'protocol' | 'reason'>;
  readonly sessionDuration: Histogram<'protocol'>;
  readonly computeStepDuration: Histogram<'protocol'>;
  readonly blames: Counter<'peer'>;
  readonly finishDuration: Histogram;
  readonly finishes: Counter<'result'>;
  readonly refusals: Counter<'key' | 'reason'>;
  readonly presignaturesCreated: Counter<'key'>;
  readonly presignaturesExpired: Counter<'key'>;
  readonly presignaturesSuperseded: Counter<'key'>;
  readonly rpcs: Counter<'method' | 'code'>;
  readonly peerMessages: Counter<'result'>;
  readonly peerStreamErrors: Counter<'peer'>;

  constructor(index: number, bootId: string, source: KeyGaugeSource) {
    const registers = [this.registry];
    this.registry.setDefaultLabels({ signer: String(index) });
    registerProcessMetrics(this.registry, 'quorumkey_signer_');

    new Gauge({
      name: 'quorumkey_signer_start_time_seconds',
      help: 'Unix time at which this signer process started (changes with every boot).',
      registers,
    }).set(Date.now() / 1000);
    new Gauge({
      name: 'quorumkey_signer_boot_info',
      help: 'Always 1; the boot_id label is the random id of this process start (presignatures die with it).',
      labelNames: ['boot_id'],
      registers,
    }).set({ boot_id: bootId }, 1);
    new Gauge({
      name: 'quorumkey_signer_presignatures',
      help: 'Presignatures held in memory, by key.',
      labelNames: ['key'],
      registers,
      collect() {
        this.reset();
        for (const k of source.keys()) this.set({ key: k.keyId }, k.presignatures);
      },
    });
    new Gauge({
      name: 'quorumkey_signer_key_epoch',
      help: 'Epoch of the share held for each key (0 after key generation, +1 per refresh).',
      labelNames: ['key'],
      registers,
      collect() {
        this.reset();
        for (const k of source.keys()) this.set({ key: k.keyId }, k.epoch);
      },
    });
    new Gauge({
      name: 'quorumkey_signer_keys',
      help: 'Number of keys whose share this signer holds.',
      registers,
      collect() {
        this.set(source.keys().length);
      },
    });
    new Gauge({
      name: 'quorumkey_signer_pair_retired',
      help: '1 for each (key, peer) whose OT correlation with this signer is retired after a failed check: no presign with the peer until `quorumkey signers reconcile` or a refresh.',
      labelNames: ['key', 'peer'],
      registers,
      collect() {
        this.reset();
        for (const p of source.retiredPairs()) this.set({ key: p.keyId, peer: String(p.peer) }, 1);
      },
    });
    new Gauge({
      name: 'quorumkey_signer_pending_peer_messages',
      help: 'Peer messages buffered for protocol sessions that have not started here yet.',
      registers,
      collect() {
        this.set(source.pendingMessages());
      },
    });
    new Gauge({
      name: 'quorumkey_signer_running_sessions',
      help: 'Protocol sessions (keygen, refresh, presign) currently running.',
      registers,
      collect() {
        this.set(source.runningSessions());
      },
    });

    new Gauge({
      name: 'quorumkey_signer_compute_backlog',
      help: 'Session steps posted to the compute thread (every protocol session) and not answered yet.',
      registers,
      collect() {
        this.set(source.computeBacklog());
      },
    });
    this.computeStepDuration = new Histogram({
      name: 'quorumkey_signer_compute_step_seconds',
      help: 'Time the compute thread spent on one session step (a round or the output), by protocol.',
      labelNames: ['protocol'],
      buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
      registers,
    });

    this.sessions = new Counter({
      name: 'quorumkey_signer_sessions_total',
      help: 'Protocol sessions by protocol (dkg, refresh, presign) and result (ok, aborted, error).',
      labelNames: ['protocol', 'result'],
      registers,
    });
    this.sessionAborts = new Counter({
      name: 'quorumkey_signer_session_aborts_total',
      help: 'Aborted protocol sessions by protocol and abort reason.',
      labelNames: ['protocol', 'reason'],
      registers,
    });
    this.sessionDuration = new Histogram({
      name: 'quorumkey_signer_session_duration_seconds',
      help: 'Wall time of protocol sessions, start to output or abort.',
      labelNames: ['protocol'],
      buckets: [0.05, 0.1, 0.25, 0.5, 1, 2, 4, 8, 16, 32, 64],
      registers,
    });
    this.blames = new Counter({
      name: 'quorumkey_signer_blames_total',
      help: 'Blames raised by this signer (failed OT / VOLE check), by peer.',
      labelNames: ['peer'],
      registers,
    });
    this.finishDuration = new Histogram({
      name: 'quorumkey_signer_finish_duration_seconds',
      help: 'Time to compute an online signature share (Finish).',
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25],
      registers,
    });
    this.finishes = new Counter({
      name: 'quorumkey_signer_finish_total',
      help: 'Finish calls by result (ok, refused, expired, unknown-presignature, error).',
      labelNames: ['result'],
      registers,
    });
    this.presignaturesExpired = new Counter({
      name: 'quorumkey_signer_presignatures_expired_total',
      help: 'Presignatures destroyed unused after the presignature TTL (cluster.json presignatureTtlMs), by key.',
      labelNames: ['key'],
      registers,
    });
    this.presignaturesSuperseded = new Counter({
      name: 'quorumkey_signer_presignatures_superseded_total',
      help: 'Presignatures wiped unused when a new coordinator generation presigned (the coordinator that pooled them restarted), by key.',
      labelNames: ['key'],
      registers,
    });
    this.refusals = new Counter({
      name: 'quorumkey_signer_finish_refusals_total',
      help: "Finish calls this signer refused under the key's sealed policy, by key and reason (e.g. context-not-allowed, rate-limited).",
      labelNames: ['key', 'reason'],
      registers,
    });
    this.presignaturesCreated = new Counter({
      name: 'quorumkey_signer_presignatures_created_total',
      help: 'Presignatures produced by completed presign sessions, by key.',
      labelNames: ['key'],
      registers,
    });
    this.rpcs = new Counter({
      name: 'quorumkey_signer_rpc_requests_total',
      help: 'Signer-service RPCs by method and gRPC status.',
      labelNames: ['method', 'code'],
      registers,
    });
    this.peerMessages = new Counter({
      name: 'quorumkey_signer_peer_messages_total',
      help: 'Protocol messages received from peers, by what happened to them (delivered, buffered, dropped-*).',
      labelNames: ['result'],
      registers,
    });
    this.peerStreamErrors = new Counter({
      name: 'quorumkey_signer_peer_stream_errors_total',
      help: 'Outgoing peer streams that failed before their session ended, by peer.',
      labelNames: ['peer'],
      registers,
    });
  }
}
