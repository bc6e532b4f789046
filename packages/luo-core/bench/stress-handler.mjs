// The bench's file type and handler: the same idea as test/support/test-handler.ts (a
// memfd-like file whose bytes live in pages preserved with kho.allocPreserve), in plain JS
// over dist/, without the tests' failure injection and call log.
import { KernelError } from "@liveupdate/kho";

let nextInode = 1;

/** A memfd-like file: bytes, a position, an inode. */
export class BenchFile {
  constructor(bytes = new Uint8Array(0), pos = 0) {
    this.inode = nextInode++;
    this.bytes = bytes;
    this.pos = pos;
    this.description = `benchfd:${this.inode}`;
  }
}

const MAGIC = 0x314d454d54534554n;

/** The handler (`compatible` "bench-memfd-v1"). */
export const benchHandler = {
  compatible: "bench-memfd-v1",
  canPreserve: (file) => file instanceof BenchFile,
  getId: (file) => file.inode,
  preserve(args) {
    const { kho, memory } = args.machine;
    const file = args.file;
    const record = kho.allocPreserve(40);
    const data = file.bytes.length > 0 ? kho.allocPreserve(file.bytes.length) : 0;
    memory.writeU64(record, MAGIC);
    memory.writeU64(record + 8, file.bytes.length);
    memory.writeU64(record + 16, file.pos);
    memory.writeU64(record + 24, data);
    if (data !== 0) memory.write(data, file.bytes);
    args.privateData = { record, data, size: file.bytes.length };
    args.serializedData = BigInt(record);
  },
  unpreserve(args) {
    const p = args.privateData;
    if (p.data !== 0) args.machine.kho.unpreserveFree(p.data, p.size);
    args.machine.kho.unpreserveFree(p.record, 40);
  },
  retrieve(args) {
    const { memory, incoming } = args.machine;
    const record = Number(args.serializedData);
    if (incoming.stampOf(record) === undefined || memory.readU64(record) !== MAGIC) throw new KernelError("EINVAL", "bad record");
    const size = Number(memory.readU64(record + 8));
    const pos = Number(memory.readU64(record + 16));
    const data = Number(memory.readU64(record + 24));
    const bytes = data === 0 ? new Uint8Array(0) : memory.read(data, size);
    if (data !== 0) incoming.restoreFree(data);
    incoming.restoreFree(record);
    args.file = new BenchFile(bytes, pos);
  },
  finish(args) {
    if (args.retrieveStatus > 0) return;
    const { memory, incoming } = args.machine;
    const record = Number(args.serializedData);
    if (incoming.stampOf(record) === undefined) return;
    const data = Number(memory.readU64(record + 24));
    if (data !== 0) incoming.restoreFree(data);
    incoming.restoreFree(record);
  },
};
