/**
 * memfd-v2 (the repo's own handler) as a kit subject, for the kit's tests.
 */
import { createHash } from "node:crypto";
import type { LuoFile } from "@liveupdate/luo-core";
import { MFD_ALLOW_SEALING, MemfdFile, memfd } from "@liveupdate/memfd";
import { memfdV2 } from "@liveupdate/memfd-luo-v2";
import type { HandlerSubject } from "../../src/index.js";

function asMemfd(file: LuoFile): MemfdFile {
  if (!(file instanceof MemfdFile)) throw new Error(`${file.description} is not a memfd`);
  return file;
}

/** memfd-v2 as a kit subject: sizes, contents and positions vary with the seed. */
export const memfdV2Subject: HandlerSubject = {
  handler: () => memfdV2,
  makeFile: (machine, seed) => {
    const f = memfd.create(machine, { name: `seed-${seed}`, flags: MFD_ALLOW_SEALING });
    const size = 1 + ((seed * 7919) % (5 * 4096));
    const bytes = new Uint8Array(size);
    for (let i = 0; i < size; i++) bytes[i] = (i * 31 + seed) & 0xff;
    f.write(bytes);
    return f;
  },
  snapshot: (file) => {
    const f = asMemfd(file);
    return { size: f.size, pos: f.position, sha256: createHash("sha256").update(f.pread(0, f.size)).digest("hex") };
  },
};

