/**
 * `@liveupdate/memfd-luo-v0`: the first posted memfd preservation format, `"memfd-v0"`: an
 * FDT holding `pos`, `size` and the folio list as a KHO array (the seed variant; the posted
 * variant's 16-byte records are read too).
 *
 * - the contract: `format.ts` (layout table, constants, compatible string, FDT encoders)
 * - plain data: {@link MemfdV0FolioTable}, {@link preserveMemfdV0}, {@link restoreMemfdV0}
 * - reading without consuming (inspector): {@link decodeMemfdV0}
 * - the LUO file handler: {@link MemfdV0Handler}, {@link memfdV0}
 *
 * @packageDocumentation
 */
export * from "./format.js";
export { MemfdV0FolioTable, MEMFD_V0_ORDER_UNKNOWN, type MemfdV0Folio } from "./folio-table.js";
export { decodeMemfdV0, type MemfdV0Record, type MemfdV0Variant, type MemfdV0DecodeOptions } from "./decode.js";
export {
  preserveMemfdV0,
  writeMemfdV0Pos,
  unpreserveMemfdV0,
  restoreMemfdV0,
  discardMemfdV0,
  type MemfdV0Contents,
  type MemfdV0Preserved,
  type MemfdV0Restorer,
} from "./record.js";
export { MemfdV0Handler, memfdV0 } from "./handler.js";
