/**
 * Human and JSON views of a blob: `formatDts` prints what `dtc -I dtb -O dts` prints (dtc
 * 1.6.1's value-type guess and escapes), optionally with byte offsets; `fdtToJson` gives
 * the same tree as plain JSON with offsets, for tools.
 */
import type { Fdt } from "./read.js";
import { decodeLatin1 } from "./wire/strings.js";

/**
 * Longest property name a view prints whole. A hostile blob can point thousands of
 * properties into the middle of one long unterminated-looking string; printing each name
 * whole would make the output quadratic in the blob. Longer names are cut and marked with
 * their length (real names are at most 31 characters).
 */
export const FORMAT_MAX_NAME = 256;

/** The property's name as views print it: whole, or cut at {@link FORMAT_MAX_NAME}. */
function viewPropertyName(fdt: Fdt, p: number): string {
  const bytes = fdt.bytes;
  const start = fdt.header.offDtStrings + fdt.propertyNameOffset(p);
  const end = bytes.indexOf(0, start); // the reader found this NUL while indexing
  if (end - start <= FORMAT_MAX_NAME) return fdt.propertyName(p);
  return `${decodeLatin1(bytes, start, start + FORMAT_MAX_NAME)}…[${end - start} bytes]`;
}

/** How dtc would print a value. */
export type FdtValueKind = "empty" | "string" | "cells" | "bytes";

/** Characters dtc treats as part of a string: printable ASCII, NUL and the C escapes. */
function isStringByte(c: number): boolean {
  return (c >= 0x20 && c <= 0x7e) || c === 0 || (c >= 0x07 && c <= 0x0d);
}

/**
 * dtc's guess (treesource.c): a string when it ends in NUL, every byte is a string byte and
 * NULs are no more than the other bytes; otherwise cells when the length is a multiple of
 * 4; otherwise bytes.
 */
export function guessValueKind(value: Uint8Array): FdtValueKind {
  const len = value.length;
  if (len === 0) return "empty";
  let nul = 0;
  let notString = 0;
  for (let i = 0; i < len; i++) {
    const c = value[i]!;
    if (c === 0) nul++;
    if (!isStringByte(c)) notString++;
  }
  if (value[len - 1] === 0 && notString === 0 && nul <= len - nul) return "string";
  return len % 4 === 0 ? "cells" : "bytes";
}

const ESCAPES: Record<number, string> = { 7: "\\a", 8: "\\b", 9: "\\t", 10: "\\n", 11: "\\v", 12: "\\f", 13: "\\r", 0x5c: "\\\\", 0x22: '\\"', 0: "\\0" };

/** `"00"` .. `"ff"`, built once: formatting a value allocates no per-byte strings. */
const HEX2: readonly string[] = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, "0"));

function hex2(c: number): string {
  return c < 256 ? HEX2[c]! : c.toString(16);
}

/** The bytes as lowercase hex, two digits each. */
function toHex(value: Uint8Array): string {
  let s = "";
  for (const c of value) s += HEX2[c]!;
  return s;
}

/** The dts text of a value (what follows `name = `), or `""` for an empty one. */
export function formatValue(value: Uint8Array): string {
  switch (guessValueKind(value)) {
    case "empty":
      return "";
    case "string": {
      let s = '"';
      for (let i = 0; i < value.length - 1; i++) {
        const c = value[i]!;
        const esc = ESCAPES[c];
        s += esc ?? String.fromCharCode(c); // every other byte is printable: see guessValueKind
      }
      return `${s}"`;
    }
    case "cells": {
      let s = "<";
      for (let i = 0; i < value.length; i += 4) {
        const v = ((value[i]! << 24) | (value[i + 1]! << 16) | (value[i + 2]! << 8) | value[i + 3]!) >>> 0;
        s += `${i === 0 ? "" : " "}0x${hex2(v)}`;
      }
      return `${s}>`;
    }
    case "bytes": {
      let s = "[";
      for (let i = 0; i < value.length; i++) s += i === 0 ? HEX2[value[i]!]! : ` ${HEX2[value[i]!]!}`;
      return `${s}]`;
    }
  }
}

/**
 * Indentation stops growing at this depth, so a hostile blob nested thousands deep prints
 * in space linear in its size (real trees stay far below it, and print exactly as dtc).
 */
export const FORMAT_MAX_INDENT = 32;

function indentOf(depth: number): string {
  return "\t".repeat(Math.min(depth, FORMAT_MAX_INDENT));
}

/** Options of {@link formatDts}. */
export interface FormatDtsOptions {
  /** Prefix every node and property line with its byte offset in the blob. */
  offsets?: boolean;
  /**
   * Leave out a node's `name` property when it only repeats the node's name, as dtc's
   * `name_properties` check does (old v1-v3 blobs carry one per node). Off by default: a
   * dump shows every property the blob holds.
   */
  omitRedundantNameProperties?: boolean;
}

/**
 * dtc's rule: the node's FIRST `name` property is redundant when its length is the base
 * name's (up to `@`) plus one and it starts with the base name (the last byte is not compared).
 */
function redundantNameProperty(fdt: Fdt, n: number): number {
  for (let p = fdt.firstProperty(n); p >= 0; p = fdt.nextProperty(p)) {
    if (viewPropertyName(fdt, p) !== "name") continue;
    const name = fdt.nodeName(n);
    const at = name.indexOf("@");
    const base = at < 0 ? name : name.slice(0, at);
    const value = fdt.propertyValue(p);
    if (value.length !== base.length + 1) return -1;
    for (let i = 0; i < base.length; i++) if (value[i] !== base.charCodeAt(i)) return -1;
    return p;
  }
  return -1;
}

/**
 * Print the tree as `dtc -I dtb -O dts` does. With `offsets`, each node and property line
 * starts with `/* @0x… *\/`: the offset of its BEGIN_NODE or PROP token in the blob.
 */
export function formatDts(fdt: Fdt, options: FormatDtsOptions = {}): string {
  const withOffsets = options.offsets === true;
  const omitName = options.omitRedundantNameProperties === true;
  const width = Math.max(4, fdt.bytes.length.toString(16).length);
  const at = (off: number): string => (withOffsets ? `/* @0x${off.toString(16).padStart(width, "0")} */ ` : "");
  const blank = withOffsets ? " ".repeat(width + 9) : "";
  const out: string[] = ["/dts-v1/;\n\n"];
  for (const r of fdt.reserveMap()) {
    out.push(`/memreserve/\t0x${r.address.toString(16).padStart(16, "0")} 0x${r.size.toString(16).padStart(16, "0")};\n`);
  }
  const root = fdt.root;
  if (root < 0) return out.join("");

  // Iterative walk (a hostile blob may nest deeper than the JS stack): open a node, descend
  // to its first child, and on the way back close nodes until one has a next sibling.
  const open = (n: number, depth: number): void => {
    const indent = indentOf(depth);
    out.push(`${at(fdt.nodeOffset(n))}${indent}${depth === 0 ? "/" : fdt.nodeName(n)} {\n`);
    const skip = omitName ? redundantNameProperty(fdt, n) : -1;
    for (let p = fdt.firstProperty(n); p >= 0; p = fdt.nextProperty(p)) {
      if (p === skip) continue;
      const value = formatValue(fdt.propertyValue(p));
      out.push(`${at(fdt.propertyOffset(p))}${indent}\t${viewPropertyName(fdt, p)}${value === "" ? "" : ` = ${value}`};\n`);
    }
  };
  let n = root;
  let depth = 0;
  open(n, depth);
  for (;;) {
    const child = fdt.firstChild(n);
    if (child >= 0) {
      out.push("\n");
      open((n = child), ++depth);
      continue;
    }
    for (;;) {
      out.push(`${blank}${indentOf(depth)}};\n`);
      if (depth === 0) return out.join("");
      const sibling = fdt.nextSibling(n);
      if (sibling >= 0) {
        out.push("\n");
        open((n = sibling), depth);
        break;
      }
      n = fdt.parent(n);
      depth--;
    }
  }
}

/** A property in {@link FdtJson}. */
export interface FdtJsonProperty {
  /** The name; one longer than {@link FORMAT_MAX_NAME} is cut and ends in `…[N bytes]`. */
  name: string;
  /** Offset of the PROP token in the blob. */
  offset: number;
  length: number;
  /** dtc's guess of how to show the value. */
  kind: FdtValueKind;
  /** The value as dts text (`"str"`, `<0x01>`, `[00]`), `""` when empty. */
  text: string;
  /** The raw value, hex. */
  hex: string;
}

/** A node in {@link FdtJson}: nodes are listed flat, in blob order, each naming its parent. */
export interface FdtJsonNode {
  /** The node's name (`""` for the root). */
  name: string;
  /** Index of the parent in `nodes`, -1 for the root. */
  parent: number;
  depth: number;
  /** Offset of the BEGIN_NODE token in the blob. */
  offset: number;
  properties: FdtJsonProperty[];
}

/** The JSON view of a blob. u64 values are hex strings (`"0x…"`) so no precision is lost. */
export interface FdtJson {
  header: {
    magic: string;
    totalsize: number;
    offDtStruct: number;
    offDtStrings: number;
    offMemRsvmap: number;
    version: number;
    lastCompVersion: number;
    bootCpuidPhys: number;
    sizeDtStrings: number;
    sizeDtStruct: number;
  };
  reserveMap: { address: string; size: string }[];
  /** Every node in blob (pre-)order; the root first. Flat, so any depth serialises. */
  nodes: FdtJsonNode[];
}

/** The whole blob as JSON-ready data. */
export function fdtToJson(fdt: Fdt): FdtJson {
  const nodes: FdtJsonNode[] = [];
  if (fdt.root < 0) return finish(fdt, nodes);
  // Pre-order without recursion: a hostile blob may nest deeper than the JS stack.
  const index = new Int32Array(fdt.nodeCount); // reader handle -> position in `nodes`
  let n = fdt.root;
  let depth = 0;
  for (;;) {
    const properties: FdtJsonProperty[] = [];
    for (let p = fdt.firstProperty(n); p >= 0; p = fdt.nextProperty(p)) {
      const value = fdt.propertyValue(p);
      properties.push({
        name: viewPropertyName(fdt, p),
        offset: fdt.propertyOffset(p),
        length: value.length,
        kind: guessValueKind(value),
        text: formatValue(value),
        hex: toHex(value),
      });
    }
    index[n] = nodes.length;
    nodes.push({ name: fdt.nodeName(n), parent: depth === 0 ? -1 : index[fdt.parent(n)]!, depth, offset: fdt.nodeOffset(n), properties });
    const child = fdt.firstChild(n);
    if (child >= 0) {
      n = child;
      depth++;
      continue;
    }
    for (;;) {
      if (depth === 0) return finish(fdt, nodes);
      const sibling = fdt.nextSibling(n);
      if (sibling >= 0) {
        n = sibling;
        break;
      }
      n = fdt.parent(n);
      depth--;
    }
  }
}

function finish(fdt: Fdt, nodes: FdtJsonNode[]): FdtJson {
  const h = fdt.header;
  return {
    header: {
      magic: `0x${h.magic.toString(16)}`,
      totalsize: h.totalsize,
      offDtStruct: h.offDtStruct,
      offDtStrings: h.offDtStrings,
      offMemRsvmap: h.offMemRsvmap,
      version: h.version,
      lastCompVersion: h.lastCompVersion,
      bootCpuidPhys: h.bootCpuidPhys,
      sizeDtStrings: h.sizeDtStrings,
      sizeDtStruct: h.sizeDtStruct,
    },
    reserveMap: fdt.reserveMap().map((r) => ({ address: `0x${r.address.toString(16)}`, size: `0x${r.size.toString(16)}` })),
    nodes,
  };
}
