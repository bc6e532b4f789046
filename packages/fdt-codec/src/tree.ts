/**
 * The plain, fully materialised tree model: what `Fdt.toTree()` decodes into and what
 * the dtc-layout encoder writes. Values are raw bytes exactly as stored in the blob.
 */
import type { FdtReserveEntry } from "./layout.js";

/** A property: its name and its raw value bytes. */
export interface FdtProperty {
  name: string;
  value: Uint8Array;
}

/** A node: its name (with `@unit-address`; `""` for the root), properties in blob order, children in blob order. */
export interface FdtNode {
  name: string;
  properties: FdtProperty[];
  children: FdtNode[];
}

/** A whole device tree. */
export interface FdtTree {
  /** `boot_cpuid_phys` from the header. */
  bootCpuidPhys: number;
  /** Memory reservations, in order, without the terminator. */
  reserveMap: FdtReserveEntry[];
  root: FdtNode;
}
