/**
 * The coordinator's CT log: loaded at the first /ct/v1/ request once ct.json exists (so `quorumkey
 * ct init` needs no restart; later changes to ct.json do). It signs through the SignService as
 * the caller `ct-log`, so the key's client list decides whether the log may use the key, and the
 * signers check every tree head and SCT as content of context `sct`.
 */
import { readFile } from 'node:fs/promises';
import { publicKeySpki } from '../protocol/ecdsa.js';
import type { KeyStore } from '../coordinator/keys.js';
import type { Logger } from '../coordinator/log.js';
import type { SignService } from '../coordinator/sign.js';
import { acceptedRoots, CT_LOG_CALLER, CtConfigError, ctPaths, parseCtConfig } from './config.js';
import { CtLog } from './log.js';
import { LogStore } from './log-store.js';

export const CT_SIGN_DEADLINE_MS = 10_000;

export interface CtDeps {
  clusterDir: string;
  sign: SignService;
  keys: KeyStore;
  log: Logger;
}

export class CtService {
  private loaded: Promise<{ log: CtLog; store: LogStore }> | undefined;

  constructor(private readonly d: CtDeps) {}

  /** The log, or undefined when none is configured; throws CtConfigError on a bad configuration. */
  async front(): Promise<CtLog | undefined> {
    if (!this.loaded) {
      let text: string;
      try {
        text = await readFile(ctPaths(this.d.clusterDir).config, 'utf8');
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
        throw e;
      }
      // A failed load is not kept: the operator fixes ct.json and the next request tries again.
      this.loaded ??= this.load(text);
      this.loaded.catch(() => (this.loaded = undefined));
    }
    return (await this.loaded).log;
  }

  private async load(text: string): Promise<{ log: CtLog; store: LogStore }> {
    const config = parseCtConfig(text);
    const key = this.d.keys.get(config.keyId);
    if (!key) throw new CtConfigError(`key '${config.keyId}' does not exist`);
    if (!key.policy.contexts.includes('sct')) throw new CtConfigError(`key '${config.keyId}' has policy ${key.policy.contexts.join(',')}; the log key needs policy sct`);
    const store = await LogStore.open(ctPaths(this.d.clusterDir).store, (bytes) =>
      this.d.log.warn('CT log: a torn last entry (never acknowledged) was set aside', { bytes }),
    );
    const sign = async (tbs: Uint8Array) =>
      (await this.d.sign.sign({ keyId: config.keyId, tbs, digestAlg: 'sha256', caller: CT_LOG_CALLER, claimedContext: 'sct', deadline: Date.now() + CT_SIGN_DEADLINE_MS })).signatureDer;
    const log = new CtLog({ store, roots: acceptedRoots(config), logKeySpki: publicKeySpki(key.publicKey), sign });
    this.d.log.info('CT log serving', { key: config.keyId, log_id: Buffer.from(log.logId).toString('base64'), entries: store.treeSize, roots: config.roots.length });
    return { log, store };
  }

  async close(): Promise<void> {
    const loaded = await this.loaded?.catch(() => undefined);
    await loaded?.store.close();
  }
}
