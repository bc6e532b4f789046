/** `FileOpArgs` as luo-core builds them, for calling the handler's ops directly. */
import type { Machine } from "@liveupdate/kho";
import type { FileOpArgs, LuoFile } from "@liveupdate/luo-core";
import { MemfdFile } from "@liveupdate/memfd";
import { memfdV0 } from "../../src/index.js";

/** Fresh op arguments for one file in `machine`. */
export function opArgs(machine: Machine, file?: LuoFile, serializedData = 0n, retrieveStatus = 0): FileOpArgs {
  return { handler: memfdV0, machine, file, serializedData, privateData: undefined, retrieveStatus };
}

/** The file a retrieve produced, as the memfd it must be. */
export function asMemfd(file: LuoFile | undefined): MemfdFile {
  if (!(file instanceof MemfdFile)) throw new Error(`${file?.description ?? "no file"} is not a memfd`);
  return file;
}
