/**
 * Kexec HandOver, `kho-v4` (Linux 7.2): the whole wire contract in one place.
 *
 * Everything is little-endian (the CPU's order) and page-sized things are 4 KiB. Every
 * cross-kernel pointer is a u64 physical address, 0 meaning none. The FDT container is
 * big-endian, but KHO property VALUES are raw little-endian bytes (a u64 is 8 bytes as
 * the CPU stores it; no `#address-cells`, no `reg`).
 *
 * ```text
 * root FDT (one page; sequential-write root, read-write sub-trees, packed):
 *   / { compatible = "kho-v4"; preserved-memory-map = <u64 LE phys of radix root>;
 *       <name> { blob-size = <u64 LE>; preserved-data = <u64 LE phys>; }; ... }
 *   newest sub-tree first; blob-size before preserved-data (setprop puts new props first)
 *
 * radix preserved-memory map (every node one page, not itself preserved):
 *   key = (1 << (52 - order)) | (pa >> (12 + order))          (< 2^53: exact in a JS number)
 *   levels 5..1: u64 table[512], index = (key >> ((L - 1) * 9 + 15)) & 511
 *   level 0:     bitmap of 32768 bits, bit = key & 0x7fff (byte bit/8, bit bit%8)
 *
 * restorable page (next kernel, head page of each run): { order, magic "KHOP" 0x4b484f50 }
 *
 * kho_vmalloc (16 bytes):   u64 first | u32 total_pages | u16 flags | u16 order
 * kho_vmalloc_chunk (page): u64 next  | u64 phys[511] (zero-terminated)
 * kho block (page):         u64 next  | u64 count     | entries at 16 + i * entry_size
 * kexec-metadata (73 B):    u32 version = 1 | char previous_release[65] | u32 kexec_count
 * x86 setup_data:           u64 next | u32 type | u32 len | data; type 10 = kho_data:
 *                           u64 fdt_addr | u64 fdt_size | u64 scratch_addr | u64 scratch_size
 * ```
 *
 * @packageDocumentation
 */

export const PAGE_SHIFT = 12;
export const PAGE_SIZE = 4096;
/** Physical addresses are at most 52 bits wide: every one fits a JS number exactly. */
export const PHYS_ADDR_BITS = 52;
/** Buddy orders 0..MAX_PAGE_ORDER (x86-64). */
export const MAX_PAGE_ORDER = 10;

/** The root node's compatible string: the version of this whole contract. */
export const KHO_FDT_COMPATIBLE = "kho-v4";
export const KHO_FDT_MEMORY_MAP_PROP_NAME = "preserved-memory-map";
export const KHO_SUB_TREE_PROP_NAME = "preserved-data";
export const KHO_SUB_TREE_SIZE_PROP_NAME = "blob-size";
/** The root FDT lives in one page. */
export const KHO_FDT_SIZE = PAGE_SIZE;

/** Radix tree geometry. */
export const KHO_ORDER_0_LOG2 = 64 - PAGE_SHIFT; // 52
export const KHO_TABLE_SIZE_LOG2 = 9; // 512 u64 per node
export const KHO_TABLE_SIZE = 1 << KHO_TABLE_SIZE_LOG2;
export const KHO_BITMAP_SIZE_LOG2 = PAGE_SHIFT + 3; // 32768 bits per leaf
export const KHO_BITMAP_BITS = 1 << KHO_BITMAP_SIZE_LOG2;
/** Five table levels (5..1) and one bitmap level (0). */
export const KHO_TREE_MAX_DEPTH = 6;

/** Stamped on the head page of each preserved run by the next kernel. */
export const KHO_PAGE_MAGIC = 0x4b484f50; // "KHOP"

/** `kho_vmalloc`. */
export const KHO_VMALLOC_DESCRIPTOR_SIZE = 16;
export const KHO_VMALLOC_ALLOC = 0x1;
export const KHO_VMALLOC_HUGE_VMAP = 0x2;
export const KHO_VMALLOC_KNOWN_FLAGS = KHO_VMALLOC_ALLOC | KHO_VMALLOC_HUGE_VMAP;
/** Physical addresses per chunk page after the `next` link. */
export const KHO_VMALLOC_CHUNK_ENTRIES = (PAGE_SIZE - 8) / 8; // 511

/** KHO serialization blocks (`block.h`). */
export const KHO_BLOCK_SIZE = PAGE_SIZE;
export const KHO_BLOCK_HEADER_SIZE = 16;
/** More blocks than this in one chain is corruption (reader) or `ENOSPC` (writer). */
export const KHO_BLOCK_MAX_BLOCKS = 10000;

/** Entries of `entrySize` bytes that fit one block. */
export function khoBlockEntriesPerBlock(entrySize: number): number {
  return Math.floor((KHO_BLOCK_SIZE - KHO_BLOCK_HEADER_SIZE) / entrySize);
}

/** `kexec-metadata` sub-tree blob. */
export const KHO_KEXEC_METADATA_NAME = "kexec-metadata";
export const KHO_KEXEC_METADATA_VERSION = 1;
export const KHO_KEXEC_METADATA_SIZE = 73;
export const KHO_KEXEC_METADATA_RELEASE_LEN = 65;

/** x86 boot protocol: `boot_params.hdr.setup_data` and the KHO entry in its chain. */
export const X86_BOOT_PARAMS_SETUP_DATA_OFFSET = 0x250;
export const X86_SETUP_DATA_HEADER_SIZE = 16;
export const X86_SETUP_TYPE_KEXEC_KHO = 10;
export const X86_KHO_DATA_SIZE = 32;

/** The radix key of a run of `2^order` pages at `phys` (which must be order-aligned). */
export function radixEncodeKey(phys: number, order: number): number {
  // (1 << (52 - order)) | (phys >> (12 + order)), in doubles: both parts are < 2^53 and
  // the high bit is above every bit of the low part, so + is |.
  return 2 ** (KHO_ORDER_0_LOG2 - order) + Math.floor(phys / 2 ** (PAGE_SHIFT + order));
}

/** Inverse of {@link radixEncodeKey}: `{ phys, order }`, or undefined for a key no order encodes. */
export function radixDecodeKey(key: number): { phys: number; order: number } | undefined {
  if (!Number.isSafeInteger(key) || key <= 0) return undefined;
  const highBit = Math.floor(Math.log2(key));
  // log2 can round up just below a power of two; correct it.
  const top = 2 ** highBit > key ? highBit - 1 : highBit;
  const order = KHO_ORDER_0_LOG2 - top;
  if (order < 0) return undefined;
  const low = key - 2 ** top;
  return { phys: low * 2 ** (PAGE_SHIFT + order), order };
}

/** Table index of `key` at radix level `level` (1..5). */
export function radixTableIndex(key: number, level: number): number {
  return Math.floor(key / 2 ** ((level - 1) * KHO_TABLE_SIZE_LOG2 + KHO_BITMAP_SIZE_LOG2)) % KHO_TABLE_SIZE;
}

/** Bit index of `key` in its level-0 bitmap. */
export function radixBitmapIndex(key: number): number {
  return key % KHO_BITMAP_BITS;
}
