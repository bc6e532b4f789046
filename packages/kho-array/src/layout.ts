/**
 * The KHO array, format 0 (`KARR`): the whole wire layout in one place.
 *
 * Proposed in the RFC "kho: introduce the KHO array" (Pratyush Yadav, Sep 2025; never
 * merged): a sparse array of 64-bit entries whose pages are preserved across kexec.
 * Little-endian; every pointer a u64 physical address, 0 meaning none.
 *
 * ```text
 * descriptor (16 bytes, packed; embedded by the user in something preserved)
 *   off  size  field
 *   0    4     magic     u32 0x4B415252 ("KARR"; bytes 52 52 41 4B)
 *   4    2     version   u16 = 0
 *   6    2     reserved  u16 = 0
 *   8    8     first     u64 phys of the first page, 0 = empty array
 *
 * page (one 4 KiB page each, zero-filled when allocated)
 *   0    8     next      u64 phys of the next page, 0 at the end
 *   8    8     startpos  u64 index held by entries[0]: a multiple of 510
 *   16   4080  entries   510 x u64
 *
 * entry (bit 0 is the tag)
 *   0                      empty slot
 *   (v << 1) | 1           value v in [0, 2^63 - 1]   (XArray's xa_mk_value)
 *   non-zero, bit 0 clear  pointer (opaque; 8-byte aligned)
 * ```
 *
 * Pages are linked in strictly ascending `startpos`; a run of 510 indices without entries
 * has no page. Format 0 costs 8 bytes per entry when dense plus 16 bytes per 510 indices,
 * and up to a whole page per entry when sparse.
 *
 * @packageDocumentation
 */

/** `"KARR"` as the u32 at offset 0. */
export const KHO_ARRAY_MAGIC = 0x4b415252;
/** The format this package reads and writes. */
export const KHO_ARRAY_FORMAT_VERSION = 0;

/** Bytes in a descriptor. */
export const KHO_ARRAY_DESCRIPTOR_SIZE = 16;
/** Descriptor offset of `magic` (u32). */
export const KHO_ARRAY_DESC_MAGIC_OFFSET = 0;
/** Descriptor offset of `version` (u16). */
export const KHO_ARRAY_DESC_VERSION_OFFSET = 4;
/** Descriptor offset of `reserved` (u16). */
export const KHO_ARRAY_DESC_RESERVED_OFFSET = 6;
/** Descriptor offset of `first` (u64 phys). */
export const KHO_ARRAY_DESC_FIRST_OFFSET = 8;

/** Bytes in a page. */
export const KHO_ARRAY_PAGE_SIZE = 4096;
/** Page offset of `next` (u64 phys). */
export const KHO_ARRAY_PAGE_NEXT_OFFSET = 0;
/** Page offset of `startpos` (u64). */
export const KHO_ARRAY_PAGE_STARTPOS_OFFSET = 8;
/** Page offset of `entries[0]`. */
export const KHO_ARRAY_PAGE_ENTRIES_OFFSET = 16;
/** Entries per page: `(4096 - 16) / 8`. */
export const KHO_ARRAY_ENTRIES_PER_PAGE = (KHO_ARRAY_PAGE_SIZE - KHO_ARRAY_PAGE_ENTRIES_OFFSET) / 8;

/** The largest value an entry can hold: `LONG_MAX`. */
export const KHO_ARRAY_MAX_VALUE = 2n ** 63n - 1n;
/** Pointer entries are at least this aligned (so bit 0, the value tag, is clear). */
export const KHO_ARRAY_POINTER_ALIGN = 8;
