/**
 * Errors. Every failure carries libfdt's error code (so a verdict can be compared with
 * libfdt's), the byte offset where it was found and the rule that was broken.
 */

/** libfdt's error codes by name, with their numeric values (returned negated by libfdt). */
export const FDT_ERR = {
  FDT_ERR_NOTFOUND: 1,
  FDT_ERR_EXISTS: 2,
  FDT_ERR_NOSPACE: 3,
  FDT_ERR_BADOFFSET: 4,
  FDT_ERR_BADPATH: 5,
  FDT_ERR_BADPHANDLE: 6,
  FDT_ERR_BADSTATE: 7,
  FDT_ERR_TRUNCATED: 8,
  FDT_ERR_BADMAGIC: 9,
  FDT_ERR_BADVERSION: 10,
  FDT_ERR_BADSTRUCTURE: 11,
  FDT_ERR_BADLAYOUT: 12,
  FDT_ERR_INTERNAL: 13,
  FDT_ERR_BADNCELLS: 14,
  FDT_ERR_BADVALUE: 15,
  FDT_ERR_BADOVERLAY: 16,
  FDT_ERR_NOPHANDLES: 17,
  FDT_ERR_BADFLAGS: 18,
  FDT_ERR_ALIGNMENT: 19,
} as const;

/** A libfdt error code name such as `"FDT_ERR_TRUNCATED"`. */
export type FdtErrorCode = keyof typeof FDT_ERR;

/** The libfdt error code name for a (negative or positive) libfdt return value. */
export function fdtErrorCodeName(value: number): FdtErrorCode | undefined {
  const abs = Math.abs(value);
  for (const [name, v] of Object.entries(FDT_ERR)) if (v === abs) return name as FdtErrorCode;
  return undefined;
}

/**
 * A failure to read, check or write a device tree.
 *
 * `code` is the libfdt code a C caller would see; `offset` the byte offset in the blob
 * (or -1 when the failure is not tied to a byte, e.g. a full buffer); `rule` a short
 * stable identifier of the rule broken (`"header.magic"`, `"struct.token"`, ...).
 */
export class FdtError extends Error {
  /** Which format this error is about. Always `"fdt"`. */
  readonly format = "fdt" as const;
  readonly code: FdtErrorCode;
  readonly offset: number;
  readonly rule: string;

  constructor(code: FdtErrorCode, offset: number, rule: string, detail: string) {
    super(`fdt: ${detail} (${code}, rule ${rule}${offset >= 0 ? `, at byte ${offset}` : ""})`);
    this.name = "FdtError";
    this.code = code;
    this.offset = offset;
    this.rule = rule;
  }

  /** The negative value libfdt's C API returns for this error. */
  get libfdtValue(): number {
    return -FDT_ERR[this.code];
  }
}
