/**
 * Handover images: physical memory saved to a file (ELF core, raw dump, KHOSPRS1 sparse
 * pages), read lazily as `PhysReader`s, and the search for the KHO root FDT in them.
 */
export { FileImage, type ImageReadStats, type ImageExtent } from "./file-image.js";
export { RawDumpImage, type RawDumpOptions } from "./raw-dump.js";
export { SparsePagesImage, KHOSPRS1_MAGIC, KHOSPRS1_HEADER_SIZE, KHOSPRS1_RECORD_HEADER_SIZE } from "./sparse-pages.js";
export {
  ElfCoreImage,
  writeElfCore,
  elfCoreChunks,
  planElfCore,
  LIVEUPDATE_NOTE_NAME,
  NT_LIVEUPDATE_KHO_FDT,
  NT_LIVEUPDATE_MEMORY,
  ELF_NOTE_SEGMENT_MAX,
  ELFCLASS64,
  ELFDATA2LSB,
  EV_CURRENT,
  ET_CORE,
  EM_X86_64,
  PT_LOAD,
  PT_NOTE,
  PN_XNUM,
  ELF64_EHDR_SIZE,
  ELF64_PHDR_SIZE,
  ELF64_SHDR_SIZE,
  type ElfCorePlan,
  type ElfCoreWriteOptions,
  type ElfLoadSegment,
  type KhoFdtPointer,
} from "./elf-core.js";
export {
  findKhoFdt,
  readKhoFdtAt,
  readX86SetupData,
  readX86KhoHandover,
  looksLikeX86BootParams,
  KHO_FDT_AUTO_METHODS,
  KHO_FDT_SCAN_CHUNK_BYTES,
  X86_BOOT_FLAG_OFFSET,
  X86_BOOT_FLAG,
  X86_HEADER_MAGIC_OFFSET,
  X86_HEADER_MAGIC,
  X86_BOOT_PROTOCOL_OFFSET,
  X86_BOOT_PROTOCOL_SETUP_DATA,
  X86_BOOT_PARAMS_SIZE,
  X86_SETUP_DATA_MAX_ENTRIES,
  X86_SCAN_MAX_CANDIDATES,
  type FindKhoFdtOptions,
  type KhoFdtLocation,
  type KhoFdtMethod,
  type X86KhoData,
  type X86KhoHandover,
  type X86SetupDataEntry,
} from "./find-fdt.js";
