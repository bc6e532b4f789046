/**
 * `@liveupdate/kho`: Kexec HandOver (`kho-v4`) modelled byte for byte.
 *
 * - the contract: `abi.ts` (layouts, constants, radix keys), `errors.ts`
 * - the machine: {@link PhysicalMemory}, {@link PageAllocator}, {@link Machine}
 * - preservation: {@link KhoOutgoing} (pages, folios, `allocPreserve`, sub-trees, root FDT),
 *   {@link RadixMap}, kho_vmalloc, serialization blocks
 * - the next kernel: {@link KhoIncoming} (FDT check, map walk, `KHOP` stamps, restore)
 * - images: ELF core, raw dumps, KHOSPRS1 sparse pages, finding the root FDT
 *
 * @packageDocumentation
 */
export * from "./abi.js";
export * from "./errors.js";
export type { PhysReader, PreservedRun, KhoPreserver, KhoRestorer } from "./types.js";
export { PhysicalMemory, POISON_BYTE, type MemoryRange, type MemoryBackground, type PageState } from "./memory.js";
export { PageAllocator, alignedRunOrder, getOrder, floorLog2, trailingZeros, type PageAllocatorOptions } from "./page-allocator.js";
export { PfnRunList, PfnTable, type PfnRun } from "./pfn-runs.js";
export { RadixMap, walkRadixMap, walkRadixMapSegments, RADIX_FORMAT, MAX_RUN_ORDER, type RadixNodePage, type RadixWalkResult, type RadixWalkOptions, type RadixPageSource, type RadixSegmentVisitor } from "./radix-map.js";
export { KhoRootFdtPage, checkKhoRootFdt, retrieveKhoSubtree, listKhoSubtrees, u64LeBytes, readU64Le, type KhoSubtree, type KhoRootFdtCheck } from "./kho-root-fdt.js";
export { encodeKexecMetadata, decodeKexecMetadata, type KexecMetadata } from "./kexec-metadata.js";
export { KhoOutgoing, DEFAULT_RELEASE, type KhoOutgoingOptions } from "./kho-outgoing.js";
export { KhoIncoming, type KhoHandover, type KhoIncomingState, type KhoPageStamp } from "./kho-incoming.js";
export { Machine, parseByteSize, SCRATCH_ALIGNMENT, type MemorySpec, type MachineHook, type MachineBootOptions, type MachineKexecOptions } from "./machine.js";
export {
  encodeKhoVmalloc,
  decodeKhoVmalloc,
  preserveVmalloc,
  unpreserveVmalloc,
  readVmalloc,
  restoreVmalloc,
  allocVmallocArea,
  freeVmallocArea,
  readVmallocArea,
  type KhoVmalloc,
  type VmallocArea,
  type KhoVmallocSource,
  type VmallocLayout,
  type RestoredVmalloc,
} from "./vmalloc.js";
export { KhoBlockSet, KhoBlockIterator, readKhoBlocks, writeKhoBlocks, khoBlockEntryPhys, type KhoBlock, type KhoBlockChain } from "./block.js";
export { stampReaderOf, pagesAreStamped, type KhoStampReader } from "./stamp-probe.js";
export * from "./image/index.js";
