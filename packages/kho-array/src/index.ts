/**
 * `@liveupdate/kho-array`: the KHO array, format 0 (`KARR`), on top of `@liveupdate/kho`.
 *
 * @packageDocumentation
 */
export * from "./layout.js";
export {
  KhoArray,
  KhoArrayBuilder,
  KhoArrayCursor,
  readKhoArrayLayout,
  restoreKhoArray,
  type KhoArrayDescriptorSource,
  type KhoArrayEntry,
  type KhoArrayLayout,
  type KhoArrayMemoryReader,
  type KhoArrayPreserver,
  type KhoArrayRestorer,
} from "./kho-array.js";
