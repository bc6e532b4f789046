/**
 * The memfd decoders `luo inspect` dispatches to by a file's compatible string, each the
 * handler package's own non-consuming decoder. A package is imported only when an image
 * holds a file of its format: most images hold one format, and each package costs process
 * start-up time (memfd-v0 brings kho-array with it).
 */
import { PAGE_SIZE, type FileImage, type KhoStampReader } from "@liveupdate/kho";
import type { MemfdFolioArray } from "@liveupdate/memfd";

/** A memfd record decoded, whatever its format. */
export interface DecodedMemfd {
  readonly size: number;
  readonly pos: number;
  /** `F_GET_SEALS`; null for formats that do not carry seals. */
  readonly seals: number | null;
  readonly folios: MemfdFolioArray;
  /** Order of folio `i` when the record knows it (memfd-v0 decoded with stamps). */
  readonly orderOfFolio?: (i: number) => number | undefined;
  /** The pages the record occupies besides the folios. */
  readonly metadata: ReadonlyArray<{ readonly phys: number; readonly size: number; readonly what: string }>;
}

/** Decode the record at `data`; `stamps` are the preserved runs when the map walk completed. */
export type MemfdDecoder = (image: FileImage, data: number, stamps: KhoStampReader | undefined) => DecodedMemfd;

type Metadata = Array<{ phys: number; size: number; what: string }>;

function vmallocMetadata(folios: MemfdFolioArray, format: string): Metadata {
  const out: Metadata = [];
  const layout = folios.layout;
  if (layout === undefined) return out;
  for (const c of layout.chunks) out.push({ phys: c, size: PAGE_SIZE, what: `${format} folio array vmalloc chunk` });
  const runBytes = 2 ** layout.descriptor.order * PAGE_SIZE;
  for (const r of layout.runs) out.push({ phys: r, size: runBytes, what: `${format} folio array` });
  return out;
}

/**
 * The compatibles with a decoder, and how to load it. The strings are the handler
 * packages' `MEMFD_V*_COMPATIBLE` (the wire contract); the test suite checks they agree.
 */
const LOADERS: Readonly<Record<string, () => Promise<MemfdDecoder>>> = {
  "memfd-v2": async () => {
    const m = await import("@liveupdate/memfd-luo-v2");
    return (image, data) => {
      const d = m.decodeMemfdV2(image, data);
      return { size: d.size, pos: d.pos, seals: d.seals, folios: d.folios, metadata: [{ phys: data, size: m.MEMFD_V2_SER_SIZE, what: "memfd-v2 record" }, ...vmallocMetadata(d.folios, "memfd-v2")] };
    };
  },
  "memfd-v1": async () => {
    const m = await import("@liveupdate/memfd-luo-v1");
    return (image, data) => {
      const d = m.decodeMemfdV1(image, data);
      return { size: d.size, pos: d.pos, seals: null, folios: d.folios, metadata: [{ phys: data, size: m.MEMFD_V1_SER_SIZE, what: "memfd-v1 record" }, ...vmallocMetadata(d.folios, "memfd-v1")] };
    };
  },
  "memfd-v0": async () => {
    const m = await import("@liveupdate/memfd-luo-v0");
    return (image, data, stamps) => {
      const d = m.decodeMemfdV0(image, data, stamps === undefined ? {} : { stamps });
      const t = d.folios;
      const n = t.length;
      // The v0 folio table as the shared folio-array shape (same DIRTY / UPTODATE bits).
      const folios: MemfdFolioArray = { count: n, pfns: new Float64Array(n), flags: new Uint16Array(n), indices: new Float64Array(n), layout: undefined };
      for (let i = 0; i < n; i++) {
        folios.pfns[i] = t.pfn(i);
        folios.flags[i] = t.flags(i);
        folios.indices[i] = t.index(i);
      }
      const metadata: Metadata = [{ phys: d.fdtPhys, size: 2 ** d.fdtOrder * PAGE_SIZE, what: "memfd-v0 FDT" }];
      for (const p of d.arrayPages) metadata.push({ phys: p, size: PAGE_SIZE, what: "memfd-v0 KHO array page" });
      return {
        size: d.size,
        pos: d.pos,
        seals: null,
        folios,
        orderOfFolio: (i) => {
          const o = t.order(i);
          return o === m.MEMFD_V0_ORDER_UNKNOWN ? undefined : o;
        },
        metadata,
      };
    };
  },
};

/** The compatibles `luo inspect` decodes. */
export const MEMFD_DECODER_COMPATIBLES: readonly string[] = Object.keys(LOADERS);

/** The decoders for `compatibles` (those without one are left out), each package loaded once. */
export async function loadMemfdDecoders(compatibles: Iterable<string>): Promise<Map<string, MemfdDecoder>> {
  const out = new Map<string, MemfdDecoder>();
  for (const c of new Set(compatibles)) {
    const load = Object.hasOwn(LOADERS, c) ? LOADERS[c] : undefined;
    if (load !== undefined) out.set(c, await load());
  }
  return out;
}
