/**
 * A small "memfd-like" file type and its handler, for luo-core's own tests (never the real
 * memfd packages): a file is bytes + a position + an inode number; its handler keeps the
 * bytes in preserved pages (`kho.allocPreserve`) and a 40-byte record page:
 *
 * ```text
 * 0 u64 magic "TESTMEM1"   8 u64 size   16 u64 pos   24 u64 data phys (0: empty)   32 u64 data bytes allocated
 * ```
 *
 * `retrieve` checks every stamp and the magic before restoring anything, so a failed retrieve
 * consumes nothing; `finish` of a never-retrieved file frees its pages. Failure injection and
 * a call log make the orchestrator's calls observable.
 */
import { KernelError, PAGE_SIZE, type Machine } from "@liveupdate/kho";
import type { FileHandler, FileOpArgs, LiveUpdateFlb, LuoFile } from "../../src/index.js";

let nextInode = 1000;

/** The in-test memfd: bytes, size, file position, an inode number (its id). */
export class TestMemFile implements LuoFile {
  readonly inode: number;
  readonly kind: string;
  readonly description: string;
  #bytes: Uint8Array;
  size: number;
  pos: number;

  constructor(options: { name?: string; kind?: string; bytes?: Uint8Array; pos?: number } = {}) {
    this.inode = nextInode++;
    this.kind = options.kind ?? "a";
    this.description = `memfd:${options.name ?? "test-memfd"}`;
    this.#bytes = options.bytes?.slice() ?? new Uint8Array(0);
    this.size = this.#bytes.length;
    this.pos = options.pos ?? 0;
  }

  /** `ftruncate`. */
  ftruncate(size: number): void {
    const next = new Uint8Array(size);
    next.set(this.#bytes.subarray(0, Math.min(size, this.size)));
    this.#bytes = next;
    this.size = size;
  }

  /** `write` at the position. */
  write(data: Uint8Array | string): number {
    const bytes = typeof data === "string" ? new TextEncoder().encode(data) : data;
    const end = this.pos + bytes.length;
    if (end > this.size) this.ftruncate(end);
    this.#bytes.set(bytes, this.pos);
    this.pos = end;
    return bytes.length;
  }

  /** `pwrite` (the selftests write through mmap). */
  pwrite(data: Uint8Array | string, offset: number): void {
    const bytes = typeof data === "string" ? new TextEncoder().encode(data) : data;
    if (offset + bytes.length > this.size) this.ftruncate(offset + bytes.length);
    this.#bytes.set(bytes, offset);
  }

  /** `lseek(fd, off, SEEK_SET)`. */
  lseek(offset: number): number {
    this.pos = offset;
    return offset;
  }

  /** `read` from the position. */
  read(count: number): Uint8Array {
    const end = Math.min(this.size, this.pos + count);
    const out = this.#bytes.slice(Math.min(this.pos, end), end);
    this.pos = end;
    return out;
  }

  /** All bytes. */
  contents(): Uint8Array {
    return this.#bytes.slice(0, this.size);
  }

  /** The bytes up to the first NUL as text (what `strcmp` against the mapping sees). */
  cString(): string {
    const end = this.#bytes.indexOf(0);
    return new TextDecoder().decode(this.#bytes.subarray(0, end < 0 ? this.size : end));
  }
}

/** The file as a `TestMemFile` (throws when it is something else). */
export function asMem(file: LuoFile | undefined): TestMemFile {
  if (!(file instanceof TestMemFile)) throw new Error(`${file?.description ?? "no file"} is not a TestMemFile`);
  return file;
}

/** `/dev/null`: a file no handler takes. */
export class DevNull implements LuoFile {
  readonly description = "/dev/null";
}

/** Options of {@link testHandler}. */
export interface TestHandlerOptions {
  /** Default `test-${kind}-v1`. */
  readonly compatible?: string;
  /** Which files it takes: `TestMemFile`s of this kind (default "a"). */
  readonly kind?: string;
  /** Fail the op for these files / records. */
  readonly failPreserve?: (file: TestMemFile) => boolean;
  readonly failFreeze?: (file: TestMemFile) => boolean;
  readonly failRetrieve?: (data: bigint) => boolean;
  /** `canFinish` answer (default: always true, op absent when undefined). */
  readonly canFinish?: (args: FileOpArgs) => boolean;
  readonly flbs?: readonly LiveUpdateFlb[];
  /** Take a reference on each FLB in preserve/retrieve (handlers of FLBs do). */
  readonly useFlbs?: boolean;
}

/** A test handler with its call log. */
export interface TestHandler extends FileHandler {
  readonly calls: string[];
  /** The FLB objects the handler got from `flbs.get*` (in order). */
  readonly flbObjects: unknown[];
  readonly kind: string;
}

const MAGIC = 0x314d454d54534554n; // "TESTMEM1" little-endian
const RECORD_SIZE = 40;

interface Preserved {
  record: number;
  data: number;
  capacity: number;
}

function tokenOf(file: LuoFile | undefined): string {
  return file instanceof TestMemFile ? String(file.inode) : "-";
}

/** Read a preserved record, checking stamps and magic; consumes nothing. */
function readRecord(machine: Machine, serialized: bigint): { record: number; size: number; pos: number; data: number; capacity: number } {
  if (serialized > BigInt(Number.MAX_SAFE_INTEGER)) throw new KernelError("EINVAL", "record address out of range");
  const record = Number(serialized);
  const incoming = machine.incoming;
  if (incoming.stampOf(record) === undefined) throw new KernelError("EINVAL", `record 0x${record.toString(16)} not preserved`);
  const mem = machine.memory;
  if (mem.readU64(record) !== MAGIC) throw new KernelError("EINVAL", "bad record magic");
  const size = Number(mem.readU64(record + 8));
  const pos = Number(mem.readU64(record + 16));
  const data = Number(mem.readU64(record + 24));
  const capacity = Number(mem.readU64(record + 32));
  if (data !== 0 && (incoming.stampOf(data) === undefined || size > capacity)) throw new KernelError("EINVAL", "data not preserved");
  return { record, size, pos, data, capacity };
}

function writeContent(machine: Machine, p: Preserved, file: TestMemFile): void {
  if (file.size > p.capacity) throw new KernelError("ENOSPC", `file grew past its preserved ${p.capacity} bytes`);
  const mem = machine.memory;
  if (p.data !== 0) {
    mem.zero(p.data, p.capacity);
    mem.write(p.data, file.contents());
  }
  mem.writeU64(p.record + 8, file.size);
  mem.writeU64(p.record + 16, file.pos);
}

/** The test handler. See the module comment. */
export function testHandler(options: TestHandlerOptions = {}): TestHandler {
  const kind = options.kind ?? "a";
  const calls: string[] = [];
  const flbObjects: unknown[] = [];
  const handler: TestHandler = {
    flbObjects,
    compatible: options.compatible ?? `test-${kind}-v1`,
    kind,
    calls,
    ...(options.flbs === undefined ? {} : { flbs: options.flbs }),
    canPreserve(file: LuoFile): boolean {
      return file instanceof TestMemFile && file.kind === kind;
    },
    getId(file: LuoFile): number {
      return asMem(file).inode;
    },
    preserve(args: FileOpArgs): void {
      const file = asMem(args.file);
      calls.push(`preserve ${tokenOf(file)}`);
      if (options.failPreserve?.(file) === true) throw new KernelError("EOPNOTSUPP", "preserve refused (test)");
      const kho = args.machine.kho;
      const record = kho.allocPreserve(RECORD_SIZE);
      const capacity = Math.max(file.size, 1);
      let data = 0;
      try {
        if (file.size > 0) data = kho.allocPreserve(capacity);
      } catch (error) {
        kho.unpreserveFree(record, RECORD_SIZE);
        throw error;
      }
      const p: Preserved = { record, data, capacity: data === 0 ? 0 : capacity };
      args.machine.memory.writeU64(record, MAGIC);
      args.machine.memory.writeU64(record + 24, data);
      args.machine.memory.writeU64(record + 32, p.capacity);
      writeContent(args.machine, p, file);
      // Use each FLB's preserved object (take and drop a reference), as a real handler would.
      if (options.useFlbs === true) {
        for (const flb of options.flbs ?? []) {
          flbObjects.push(args.flbs?.getOutgoing(flb));
          args.flbs?.putOutgoing(flb);
        }
      }
      args.privateData = p;
      args.serializedData = BigInt(record);
    },
    unpreserve(args: FileOpArgs): void {
      calls.push(`unpreserve ${tokenOf(args.file)}`);
      const p = args.privateData as Preserved;
      args.machine.kho.unpreserveFree(p.data, Math.max(p.capacity, 1));
      args.machine.kho.unpreserveFree(p.record, RECORD_SIZE);
    },
    freeze(args: FileOpArgs): void {
      const file = asMem(args.file);
      calls.push(`freeze ${tokenOf(file)}`);
      if (options.failFreeze?.(file) === true) throw new KernelError("EAGAIN", "freeze refused (test)");
      writeContent(args.machine, args.privateData as Preserved, file);
    },
    unfreeze(args: FileOpArgs): void {
      calls.push(`unfreeze ${tokenOf(args.file)}`);
    },
    retrieve(args: FileOpArgs): void {
      calls.push(`retrieve 0x${args.serializedData.toString(16)}`);
      if (options.failRetrieve?.(args.serializedData) === true) throw new KernelError("EIO", "retrieve refused (test)");
      const r = readRecord(args.machine, args.serializedData);
      const bytes = r.data === 0 ? new Uint8Array(0) : args.machine.memory.read(r.data, r.size);
      // Hold a reference on each FLB's retrieved object until finish.
      if (options.useFlbs === true) for (const flb of options.flbs ?? []) flbObjects.push(args.flbs?.getIncoming(flb));
      if (r.data !== 0) args.machine.incoming.restoreFree(r.data);
      args.machine.incoming.restoreFree(r.record);
      args.file = new TestMemFile({ kind, bytes, pos: r.pos, name: "retrieved" });
    },
    finish(args: FileOpArgs): void {
      calls.push(`finish ${args.retrieveStatus}`);
      if (args.retrieveStatus > 0) {
        if (options.useFlbs === true) for (const flb of options.flbs ?? []) args.flbs?.putIncoming(flb);
        return;
      }
      // Never retrieved (or failed): give the preserved pages back if they are still there.
      const incoming = args.machine.incoming;
      const record = Number(args.serializedData);
      if (incoming.stampOf(record) === undefined) return;
      const data = Number(args.machine.memory.readU64(record + 24));
      if (data !== 0 && incoming.stampOf(data) !== undefined) incoming.restoreFree(data);
      incoming.restoreFree(record);
    },
  };
  if (options.canFinish !== undefined) {
    const canFinish = options.canFinish;
    (handler as { canFinish?: (args: FileOpArgs) => boolean }).canFinish = (args) => {
      calls.push(`canFinish ${args.retrieveStatus}`);
      return canFinish(args);
    };
  }
  return handler;
}

/** Bytes of a string. */
export function text(s: string): Uint8Array {
  return new TextEncoder().encode(s);
}

/** The page size, for the tests' arithmetic. */
export const PAGE = PAGE_SIZE;
