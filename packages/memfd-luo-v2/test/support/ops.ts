/**
 * Calling a handler's ops directly, as luo-core would: one `FileOpArgs` per op, the
 * outgoing machine for preserve..freeze, the next one for retrieve..finish.
 */
import type { Machine } from "@liveupdate/kho";
import type { FileHandler, FileOpArgs, LuoFile } from "@liveupdate/luo-core";

/** Args of one op call. */
export function opArgs(handler: FileHandler, machine: Machine, init: { file?: LuoFile; serializedData?: bigint; privateData?: unknown; retrieveStatus?: number } = {}): FileOpArgs {
  return {
    handler,
    machine,
    file: init.file,
    serializedData: init.serializedData ?? 0n,
    privateData: init.privateData,
    retrieveStatus: init.retrieveStatus ?? 0,
  };
}

/** What preserve handed back: what luo-core keeps per file. */
export interface Preserved {
  readonly file: LuoFile;
  readonly serializedData: bigint;
  readonly privateData: unknown;
}

/** `preserve` on the outgoing machine. */
export function preserve(handler: FileHandler, machine: Machine, file: LuoFile): Preserved {
  const args = opArgs(handler, machine, { file });
  handler.preserve(args);
  return { file, serializedData: args.serializedData, privateData: args.privateData };
}

/** `freeze` of a preserved file (as the kexec does), returning the possibly updated data. */
export function freeze(handler: FileHandler, machine: Machine, p: Preserved): Preserved {
  const args = opArgs(handler, machine, { file: p.file, serializedData: p.serializedData, privateData: p.privateData });
  handler.freeze?.(args);
  return { ...p, serializedData: args.serializedData };
}

/** `unpreserve` of a preserved file. */
export function unpreserve(handler: FileHandler, machine: Machine, p: Preserved): void {
  handler.unpreserve(opArgs(handler, machine, { file: p.file, serializedData: p.serializedData, privateData: p.privateData }));
}

/** `retrieve` on the next machine: the file. */
export function retrieve(handler: FileHandler, machine: Machine, serializedData: bigint): LuoFile {
  const args = opArgs(handler, machine, { serializedData });
  handler.retrieve(args);
  if (args.file === undefined) throw new Error("retrieve set no file");
  return args.file;
}

/** `finish` on the next machine. */
export function finish(handler: FileHandler, machine: Machine, serializedData: bigint, retrieveStatus: number, file?: LuoFile): void {
  handler.finish(opArgs(handler, machine, { serializedData, retrieveStatus, ...(file === undefined ? {} : { file }) }));
}

/** The errno name of what `fn` throws (it must throw an error with an errno). */
export function errnoOf(fn: () => unknown): string {
  try {
    fn();
  } catch (error) {
    const errno = (error as { errno?: unknown }).errno;
    if (typeof errno === "string") return errno;
    throw error;
  }
  throw new Error("expected an error");
}

/** The error `fn` throws. */
export function thrown(fn: () => unknown): unknown {
  try {
    fn();
  } catch (error) {
    return error;
  }
  throw new Error("expected an error");
}
