/**
 * The Flattened Device Tree container: the whole wire contract in one place.
 *
 * Everything is big-endian. A blob is a header, a memory reservation map, a structure
 * block of 4-aligned tokens and a strings block of NUL-terminated property names:
 *
 * ```text
 * off  field               notes
 *   0  magic               0xd00dfeed (0x2ff20112 while a sequential write is unfinished)
 *   4  totalsize           whole blob including free space, <= 2^31 - 1
 *   8  off_dt_struct       4-aligned
 *  12  off_dt_strings      no alignment
 *  16  off_mem_rsvmap      8-aligned
 *  20  version             17 written; 16 and 17 read
 *  24  last_comp_version   16
 *  28  boot_cpuid_phys     (v2+)
 *  32  size_dt_strings     (v3+)
 *  36  size_dt_struct      (v17)
 *
 * reserve map:  { u64 address, u64 size }*, terminated by an entry of size 0
 * struct block: BEGIN_NODE 0x1  name\0, zero-padded to 4
 *               END_NODE   0x2
 *               PROP       0x3  u32 len, u32 nameoff, value[len], padded to 4
 *               NOP        0x4  (anywhere)
 *               END        0x9  (last)
 * strings:      name\0 name\0 ...   (nameoff may point into the middle of a string)
 * ```
 *
 * Header size by version: v1 28, v2 32, v3..v16 36, v17 40.
 *
 * @packageDocumentation
 */

/** Magic of a finished blob. */
export const FDT_MAGIC = 0xd00dfeed;
/** Magic libfdt's sequential writer stores until `fdt_finish` (the complement of `FDT_MAGIC`). */
export const FDT_SW_MAGIC = 0x2ff20112;

/** Structure-block tokens. */
export const FDT_BEGIN_NODE = 0x1;
export const FDT_END_NODE = 0x2;
export const FDT_PROP = 0x3;
export const FDT_NOP = 0x4;
export const FDT_END = 0x9;

/** Every token, name and value in the structure block is padded to this. */
export const FDT_TAGSIZE = 4;
/** A reserve-map entry: two u64 (address, size). */
export const FDT_RESERVE_ENTRY_SIZE = 16;
/** A property header after the PROP token: u32 len, u32 nameoff. */
export const FDT_PROP_HEADER_SIZE = 8;

/** The version this codec writes, and the oldest one a v17 blob declares compatible. */
export const FDT_LAST_SUPPORTED_VERSION = 17;
export const FDT_FIRST_SUPPORTED_VERSION = 16;
/** `last_comp_version` written by every modern producer. */
export const FDT_LAST_COMP_VERSION = 16;
/** libfdt refuses anything larger than `INT_MAX`. */
export const FDT_MAX_TOTALSIZE = 0x7fffffff;
/** Spec limit on node and property name length (excluding a node's `@unit-address`). */
export const FDT_MAX_NAME_LENGTH = 31;
/** libfdt's `FDT_MAX_PHANDLE`: 0 and 0xffffffff are not phandles. */
export const FDT_MAX_PHANDLE = 0xfffffffe;

/** Byte offsets of the header fields. */
export const HEADER = {
  magic: 0,
  totalsize: 4,
  offDtStruct: 8,
  offDtStrings: 12,
  offMemRsvmap: 16,
  version: 20,
  lastCompVersion: 24,
  bootCpuidPhys: 28,
  sizeDtStrings: 32,
  sizeDtStruct: 36,
} as const;

/** Header size of a v17 blob; the reserve map of a dtc or packed blob starts here. */
export const FDT_V17_HEADER_SIZE = 40;
/** libfdt's sequential writer starts the reserve map at the header rounded up to 16. */
export const FDT_SW_RSVMAP_OFFSET = 48;

/** Header size declared by a given version (libfdt's `fdt_header_size_`). */
export function headerSizeForVersion(version: number): number {
  if (version <= 1) return 28;
  if (version <= 2) return 32;
  if (version < 17) return 36;
  return 40;
}

/** The decoded header. Fields a version does not have read as 0. */
export interface FdtHeader {
  readonly magic: number;
  readonly totalsize: number;
  readonly offDtStruct: number;
  readonly offDtStrings: number;
  readonly offMemRsvmap: number;
  readonly version: number;
  readonly lastCompVersion: number;
  readonly bootCpuidPhys: number;
  readonly sizeDtStrings: number;
  readonly sizeDtStruct: number;
}

/** One memory reservation. */
export interface FdtReserveEntry {
  readonly address: bigint;
  readonly size: bigint;
}

/** Round `n` up to the next multiple of 4 (the structure block's alignment). */
export function alignTag(n: number): number {
  return (n + 3) & ~3;
}
