/**
 * `decodeTree`: a blob to the plain {@link FdtTree} model in one call: what the indexed
 * reader gives (`Fdt.from(bytes).toTree(options)`), from the same structure walk building
 * the tree directly instead of the index (`readTree` in read.ts). For dtc's own reading of
 * a blob (its reserve-map rule, its refusals, its name-property clean-up) see
 * `toDtcLayout` / `readDtcTree`.
 *
 * @packageDocumentation
 */
import { readTree, type FdtToTreeOptions } from "./read.js";
import type { FdtTree } from "./tree.js";

/**
 * Decode a whole blob: `Fdt.from(bytes).toTree(options)`. Values are copies unless
 * `options.shareValues`; anything outside the root (orphan properties, a second top-level
 * node) is an error unless `options.outside` is `"drop"`. Throws `FdtError` only.
 */
export function decodeTree(bytes: Uint8Array, options: FdtToTreeOptions = {}): FdtTree {
  return readTree(bytes, options);
}
