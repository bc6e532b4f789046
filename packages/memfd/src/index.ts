/**
 * `@liveupdate/memfd`: the memfd object model the memfd LUO handlers share.
 *
 * - {@link MemfdFile}: an unlinked shmem file (`memfd_create`) in a simulated machine: size,
 *   position, seals, the frozen state of a preserved file, a page cache of order 0..9 folios
 *   in the machine's physical pages, read / write / truncate / fallocate / punch-hole /
 *   lseek; hugetlb memfds and named tmpfs files as kinds no memfd handler takes;
 * - `folio-record.ts`: `memfd_luo_folio_ser` (16 bytes) and the folio array in a
 *   `kho_vmalloc` that `memfd-v1` and `memfd-v2` both use: preserve, read, validate,
 *   restore, discard, and a contents reader for inspectors;
 * - `uapi.ts`: `MFD_*`, `F_SEAL_*`, `FALLOC_FL_*`, `SEEK_*`, and the model's limits.
 *
 * @packageDocumentation
 */
export * from "./uapi.js";
export { PageCache, MAX_FOLIO_ORDER, FOLIO_DIRTY, FOLIO_UPTODATE, type CachedFolio } from "./page-cache.js";
export {
  MemfdFile,
  createMemfd,
  createTmpfsFile,
  memfd,
  type ShmemFileKind,
  type ShmemHugePolicy,
  type MemfdCreateOptions,
  type TmpfsFileOptions,
  type MmapOptions,
  type MemfdMapping,
  type PinnedFolios,
} from "./memfd.js";
export {
  MEMFD_LUO_FOLIO_SER_SIZE,
  MEMFD_LUO_FOLIOS_PER_PAGE,
  MEMFD_LUO_FOLIO_PFN_BITS,
  MEMFD_LUO_FOLIO_FLAGS_BITS,
  MEMFD_LUO_FOLIO_DIRTY,
  MEMFD_LUO_FOLIO_UPTODATE,
  encodeFolioRecord,
  decodeFolioRecord,
  preserveFolioArray,
  preserveMemfdFolios,
  unpreserveMemfdFolios,
  unpreserveFolioArray,
  readFolioArray,
  folioRecordPhys,
  planFolioRestore,
  commitFolioRestore,
  discardFolioArray,
  incomingRecordPhys,
  u64Field,
  recordToFolioFlags,
  folioToRecordFlags,
  FolioContentsReader,
  type MemfdFolioRecord,
  type PreservedFolioArray,
  type MemfdFolioPreservePolicy,
  type MemfdFolioArray,
  type FolioArrayContext,
  type FolioRestorePlan,
  type FolioContentsOptions,
} from "./folio-record.js";
