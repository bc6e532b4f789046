/**
 * `@liveupdate/fdt-codec`: byte-exact Flattened Device Tree codec.
 *
 * - read: {@link Fdt} (lazy, indexed), {@link decodeTree}
 * - check: {@link checkLibfdt} (libfdt 1.6.1's verdict), {@link checkStrict} (spec + dtc)
 * - write: {@link FdtSequentialWriter} (libfdt fdt_sw), {@link FdtEditor} (libfdt fdt_rw +
 *   pack), {@link encodeDtc} (dtc)
 * - view: {@link formatDts}, {@link fdtToJson}
 *
 * @packageDocumentation
 */
export * from "./layout.js";
export * from "./errors.js";
export type { FdtTree, FdtNode, FdtProperty } from "./tree.js";
export { nodeNameMatches, isNodeNameChar, isPropertyNameChar, isDtcPropertyNameChar } from "./names.js";
export {
  FdtSequentialWriter,
  encodeSequential,
  FDT_CREATE_FLAG_NO_NAME_DEDUP,
  FDT_CREATE_FLAGS_ALL,
  type FdtSequentialWriterState,
  type FdtSequentialWriterGrowableOptions,
} from "./sequential-writer.js";
export { FdtEditor, type FdtNodeRef } from "./editor.js";
export { FdtOffsets, type FdtNodeStep, type FdtPropertyAt } from "./offsets.js";
export { Fdt, readHeader, type FdtToTreeOptions } from "./read.js";
export { decodeTree } from "./decode-tree.js";
export { encodeDtc, toDtcLayout } from "./encode-dtc.js";
export { checkLibfdt } from "./check-libfdt.js";
export { checkStrict } from "./check-strict.js";
export { FDT_MAX_PROBLEMS, libfdtReturnValue, type FdtProblem, type FdtCheckReport } from "./check-report.js";
export {
  formatDts,
  formatValue,
  guessValueKind,
  fdtToJson,
  FORMAT_MAX_INDENT,
  FORMAT_MAX_NAME,
  type FdtValueKind,
  type FormatDtsOptions,
  type FdtJson,
  type FdtJsonNode,
  type FdtJsonProperty,
} from "./format.js";
