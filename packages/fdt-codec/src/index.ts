/**
 * `@liveupdate/fdt-codec`: byte-exact Flattened Device Tree codec.
 *
 * @packageDocumentation
 */
export * from "./layout.js";
export * from "./errors.js";
export type { FdtTree, FdtNode, FdtProperty } from "./tree.js";
export { nodeNameMatches, isNodeNameChar, isPropertyNameChar, isDtcPropertyNameChar } from "./names.js";
