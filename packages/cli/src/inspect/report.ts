/**
 * What `luo inspect --json` prints: schema `"luo-inspect/1"`.
 *
 * Conventions: physical addresses, tokens and other u64 handles are hex strings (`"0x1f"`,
 * lower case, no padding) so that none loses precision in JSON; sizes and counts are numbers
 * (exact: every one is below 2^53 or the decode refuses it); `liveupdateNum` and FLB counts
 * are decimal strings (u64). A field that does not apply is `null`, never missing.
 *
 * ```text
 * {
 *   schema: "luo-inspect/1",
 *   image:   { path, format: "elf-core"|"khosprs1"|"raw-dump", compressed, fileSize,
 *              ranges: [{ start: hex, size }] },              // physical memory the image holds
 *   kho:     { fdt: { addr: hex, size, method: "given"|"elf-note"|"x86-setup-data"|"fdt-scan",
 *                     candidates: hex[]|null, bootParams: hex|null },
 *              compatible, memoryMap: hex,                    // the radix root
 *              subtrees: [{ name, phys: hex, size }],
 *              kexecMetadata: { version, previousRelease, kexecCount } | null,
 *              scratch: [{ start: hex, size }] | null,        // x86 kho_data's kho_scratch array
 *              dts },                                         // the root FDT as dtc prints it
 *   preserved: { runs, bytes, byOrder: [{ order, runs, bytes }], nodePages: [{ phys: hex, level }] } | null,
 *   luo:     { phys: hex, compatible, liveupdateNum: "n", sessionsPhys: hex, flbsPhys: hex,
 *              sessionBlocks: hex[], warnings: string[],
 *              flbs: [{ name, data: hex, count: "n" }],
 *              sessions: [{ name, phys: hex, fileBlocks: hex[],
 *                           files: [{ token: hex, compatible, data: hex, decoder: string|null }] }] } | null,
 *   memfds:  [{ session, token: hex, compatible, record: hex, size, pos,
 *               seals: number|null,                           // null for formats without seals (v0, v1)
 *               folios, pages, foliosByOrder: [{ order, folios }],
 *               sha256: string|null,                          // null when not computed (see note)
 *               note: string|null }],
 *   metadata: [{ kind, phys: hex, size, what }],              // the pages KHO and LUO hand over besides data
 *   problems: [{ where, message }]                            // non-empty: exit code 1
 * }
 * ```
 *
 * `memfds` lists every file whose compatible has a decoder (`memfd-v0`, `memfd-v1`,
 * `memfd-v2`), in session then file order; a file with another compatible appears only under
 * `luo.sessions[].files` with `decoder: null`.
 */

/** Schema id of the JSON output. */
export const INSPECT_SCHEMA = "luo-inspect/1";

/** A physical address or u64 handle: `"0x..."`. */
export type Hex = string;

/** A physical range. */
export interface RangeJson {
  readonly start: Hex;
  readonly size: number;
}

/** Kinds of pages in {@link InspectReport.metadata} and the memory-map picture. */
export type MetadataKind = "fdt" | "radix" | "subtree" | "luo" | "memfd-record";

/** One metadata page run. */
export interface MetadataJson {
  readonly kind: MetadataKind;
  readonly phys: Hex;
  readonly size: number;
  readonly what: string;
}

/** One memfd decoded. */
export interface MemfdJson {
  readonly session: string;
  readonly token: Hex;
  readonly compatible: string;
  /** `luo_file_ser.data`: where the handler's record is. */
  readonly record: Hex;
  readonly size: number;
  readonly pos: number;
  readonly seals: number | null;
  /** Folio records (non-empty ones). */
  readonly folios: number;
  /** Pages those folios cover. */
  readonly pages: number;
  readonly foliosByOrder: ReadonlyArray<{ readonly order: number; readonly folios: number }>;
  readonly sha256: string | null;
  readonly note: string | null;
}

/** One LUO file record. */
export interface LuoFileJson {
  readonly token: Hex;
  readonly compatible: string;
  readonly data: Hex;
  /** The decoder used, or null: no decoder for this compatible. */
  readonly decoder: string | null;
}

/** One LUO session. */
export interface LuoSessionJson {
  readonly name: string;
  readonly phys: Hex;
  readonly fileBlocks: readonly Hex[];
  readonly files: readonly LuoFileJson[];
}

/** The LUO state. */
export interface LuoJson {
  readonly phys: Hex;
  readonly compatible: string;
  readonly liveupdateNum: string;
  readonly sessionsPhys: Hex;
  readonly flbsPhys: Hex;
  readonly sessionBlocks: readonly Hex[];
  readonly warnings: readonly string[];
  readonly flbs: ReadonlyArray<{ readonly name: string; readonly data: Hex; readonly count: string }>;
  readonly sessions: readonly LuoSessionJson[];
}

/** A problem that did not stop the rest of the decode. */
export interface ProblemJson {
  readonly where: string;
  readonly message: string;
}

/** The whole `luo inspect --json` document. */
export interface InspectReport {
  readonly schema: typeof INSPECT_SCHEMA;
  readonly image: {
    readonly path: string;
    readonly format: string;
    readonly compressed: boolean;
    readonly fileSize: number;
    readonly ranges: readonly RangeJson[];
  };
  readonly kho: {
    readonly fdt: { readonly addr: Hex; readonly size: number; readonly method: string; readonly candidates: readonly Hex[] | null; readonly bootParams: Hex | null };
    readonly compatible: string;
    readonly memoryMap: Hex;
    readonly subtrees: ReadonlyArray<{ readonly name: string; readonly phys: Hex; readonly size: number }>;
    readonly kexecMetadata: { readonly version: number; readonly previousRelease: string; readonly kexecCount: number } | null;
    readonly scratch: readonly RangeJson[] | null;
    readonly dts: string;
  };
  readonly preserved: {
    readonly runs: number;
    readonly bytes: number;
    readonly byOrder: ReadonlyArray<{ readonly order: number; readonly runs: number; readonly bytes: number }>;
    readonly nodePages: ReadonlyArray<{ readonly phys: Hex; readonly level: number }>;
  } | null;
  readonly luo: LuoJson | null;
  readonly memfds: readonly MemfdJson[];
  readonly metadata: readonly MetadataJson[];
  readonly problems: readonly ProblemJson[];
}

/** `0x` + lower-case hex. */
export function hex(n: number | bigint): Hex {
  return `0x${n.toString(16)}`;
}
