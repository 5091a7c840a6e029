// LangGraph checkpoints in a JSON file: LangGraph's MemorySaver, written to disk after every change
// (atomically: a temporary file renamed over the old one) and read back when an investigation is
// resumed. Serialized values are base64 in the file. Only the newest checkpoints of a thread are
// kept (resuming needs the last one; older ones are history).
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import type { RunnableConfig } from '@langchain/core/runnables';
import { MemorySaver, type Checkpoint, type CheckpointMetadata } from '@langchain/langgraph';

type PendingWrite = Parameters<MemorySaver['putWrites']>[1][number];

type Stored = MemorySaver['storage'];
type Writes = MemorySaver['writes'];

interface FileShape {
  version: 1;
  storage: Record<string, Record<string, Record<string, [string, string, string | null]>>>;
  writes: Record<string, Record<string, [string, string, string, string | null]>>;
}

const b64 = (u: Uint8Array) => Buffer.from(u).toString('base64');
const bytes = (s: string) => new Uint8Array(Buffer.from(s, 'base64'));

export class FileCheckpointSaver extends MemorySaver {
  constructor(readonly file: string, private readonly keep = 25) {
    super();
    if (existsSync(file)) this.load();
  }

  private load(): void {
    let data: FileShape;
    try {
      data = JSON.parse(readFileSync(this.file, 'utf8'));
    } catch (e) {
      throw new Error(`cannot read the checkpoint file ${this.file}: ${(e as Error).message}`);
    }
    if (data?.version !== 1) throw new Error(`${this.file} is not a NeuroScope checkpoint file (version ${data?.version})`);
    const storage: Stored = Object.create(null);
    for (const [thread, nss] of Object.entries(data.storage)) {
      storage[thread] = Object.create(null);
      for (const [ns, cps] of Object.entries(nss)) {
        storage[thread][ns] = Object.create(null);
        for (const [id, [cp, meta, parent]] of Object.entries(cps)) storage[thread][ns][id] = [bytes(cp), bytes(meta), parent ?? undefined];
      }
    }
    const writes: Writes = Object.create(null);
    for (const [outer, inner] of Object.entries(data.writes)) {
      writes[outer] = Object.create(null);
      for (const [k, [task, channel, value, path]] of Object.entries(inner)) writes[outer][k] = [task, channel, bytes(value), ...(path === null ? [] : [path])] as [string, string, Uint8Array, string?];
    }
    this.storage = storage;
    this.writes = writes;
  }

  private prune(): void {
    for (const [thread, nss] of Object.entries(this.storage)) {
      for (const [ns, cps] of Object.entries(nss)) {
        const ids = Object.keys(cps).sort();
        for (const id of ids.slice(0, Math.max(0, ids.length - this.keep))) {
          delete cps[id];
          delete this.writes[JSON.stringify([thread, ns, id])];
        }
      }
    }
  }

  private persist(): void {
    this.prune();
    const out: FileShape = { version: 1, storage: {}, writes: {} };
    for (const [thread, nss] of Object.entries(this.storage)) {
      out.storage[thread] = {};
      for (const [ns, cps] of Object.entries(nss)) {
        out.storage[thread][ns] = {};
        for (const [id, [cp, meta, parent]] of Object.entries(cps)) out.storage[thread][ns][id] = [b64(cp), b64(meta), parent ?? null];
      }
    }
    for (const [outer, inner] of Object.entries(this.writes)) {
      out.writes[outer] = {};
      for (const [k, [task, channel, value, path]] of Object.entries(inner)) out.writes[outer][k] = [task, channel, b64(value), path ?? null];
    }
    mkdirSync(dirname(this.file), { recursive: true });
    const tmp = `${this.file}.${process.pid}.tmp`;
    writeFileSync(tmp, JSON.stringify(out));
    renameSync(tmp, this.file);
  }

  override async put(config: RunnableConfig, checkpoint: Checkpoint, metadata: CheckpointMetadata): Promise<RunnableConfig> {
    const r = await super.put(config, checkpoint, metadata);
    this.persist();
    return r;
  }

  override async putWrites(config: RunnableConfig, writes: PendingWrite[], taskId: string, taskPath?: string): Promise<void> {
    await super.putWrites(config, writes, taskId, taskPath);
    this.persist();
  }

  override async deleteThread(threadId: string): Promise<void> {
    await super.deleteThread(threadId);
    this.persist();
  }
}
