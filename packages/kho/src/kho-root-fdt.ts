/**
 * The KHO root FDT, both ways.
 *
 * Outgoing ({@link KhoRootFdtPage}): the page the kernel builds at `kho_init` with libfdt's
 * sequential-write API and then edits in place with the read-write API for every
 * `kho_add_subtree` / `kho_remove_subtree` (`fdt_open_into(fdt, fdt, PAGE_SIZE)`, edit,
 * `fdt_pack`). The page is modelled byte for byte, including what an in-place edit leaves
 * behind the blob: libfdt moves bytes within the page and never clears the old tail, so after
 * every step the new layout `[0, end of strings)` is copied over the page and the rest of the
 * page keeps its bytes (the sequential writer's strings stay at the end of the page forever,
 * as on a real machine).
 *
 * Incoming ({@link checkKhoRootFdt}, {@link retrieveKhoSubtree}): what `kho_populate`,
 * `kho_get_mem_map_phys` and `kho_retrieve_subtree` check on the previous kernel's page,
 * with libfdt's read API over hostile bytes.
 */
import { FdtEditor, FdtError, FdtOffsets, FdtSequentialWriter } from "@liveupdate/fdt-codec";
import {
  KHO_FDT_COMPATIBLE,
  KHO_FDT_MEMORY_MAP_PROP_NAME,
  KHO_FDT_SIZE,
  KHO_SUB_TREE_PROP_NAME,
  KHO_SUB_TREE_SIZE_PROP_NAME,
  PHYS_ADDR_BITS,
} from "./abi.js";
import { KernelError } from "./errors.js";

const TWO_32 = 2 ** 32;
const HEADER_OFF_DT_STRINGS = 12;
const HEADER_SIZE_DT_STRINGS = 32;

/** One sub-tree of the root: a named blob the previous kernel preserved. */
export interface KhoSubtree {
  readonly name: string;
  /** `preserved-data`: physical address of the blob. */
  readonly phys: number;
  /** `blob-size`: its size in bytes. */
  readonly size: number;
}

/** A u64 as 8 little-endian bytes (KHO property values are CPU-endian, not FDT cells). */
export function u64LeBytes(value: number): Uint8Array {
  if (!Number.isSafeInteger(value) || value < 0) throw new KernelError("EINVAL", `${value} is not a u64 this model can hold`);
  const out = new Uint8Array(8);
  const view = new DataView(out.buffer);
  view.setUint32(0, value >>> 0, true);
  view.setUint32(4, Math.floor(value / TWO_32) >>> 0, true);
  return out;
}

/** An 8-byte little-endian value as a number, or undefined when it does not fit 2^53. */
export function readU64Le(bytes: Uint8Array): number | undefined {
  const view = new DataView(bytes.buffer, bytes.byteOffset, 8);
  const hi = view.getUint32(4, true);
  return hi >= 2 ** 21 ? undefined : hi * TWO_32 + view.getUint32(0, true);
}

/** End of the data of an rw-layout blob (the strings block is last): what libfdt moves. */
function dataEnd(buf: Uint8Array): number {
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  return Math.min(buf.length, view.getUint32(HEADER_OFF_DT_STRINGS) + view.getUint32(HEADER_SIZE_DT_STRINGS));
}

/** The outgoing root FDT page. See the module comment. */
export class KhoRootFdtPage {
  /** The whole page, as the kernel's buffer holds it. */
  readonly page: Uint8Array;

  private constructor(page: Uint8Array) {
    this.page = page;
  }

  /**
   * `kho_out_fdt_setup`: `fdt_create(PAGE_SIZE)`, `fdt_finish_reservemap`, `fdt_begin_node("")`,
   * `fdt_property_string("compatible", "kho-v4")`, `fdt_property("preserved-memory-map", <u64 LE>)`,
   * `fdt_end_node`, `fdt_finish`.
   */
  static create(radixRootPhys: number): KhoRootFdtPage {
    const w = new FdtSequentialWriter(KHO_FDT_SIZE);
    w.finishReservemap();
    w.beginNode("");
    w.propertyString("compatible", KHO_FDT_COMPATIBLE);
    w.property(KHO_FDT_MEMORY_MAP_PROP_NAME, u64LeBytes(radixRootPhys));
    w.endNode();
    const blob = w.finish();
    // The writer's buffer is the page: the blob at 0 and, at the end, the strings as they
    // were before finish copied them down.
    const page = new Uint8Array(KHO_FDT_SIZE);
    page.set(new Uint8Array(blob.buffer, blob.byteOffset, KHO_FDT_SIZE));
    return new KhoRootFdtPage(page);
  }

  /** Edit an existing page (a copy of `page`, which must be one page long). */
  static fromPage(page: Uint8Array): KhoRootFdtPage {
    if (page.length !== KHO_FDT_SIZE) throw new KernelError("EINVAL", `a root FDT page is ${KHO_FDT_SIZE} bytes, got ${page.length}`);
    return new KhoRootFdtPage(page.slice());
  }

  /** The blob: the first `totalsize` bytes (a copy). */
  bytes(): Uint8Array {
    const total = new DataView(this.page.buffer, this.page.byteOffset, 8).getUint32(4);
    return this.page.slice(0, Math.min(total, this.page.length));
  }

  /**
   * `kho_add_subtree`: a child `name` of the root with `preserved-data` = `phys` and
   * `blob-size` = `size` (u64 LE each); the new node goes first.
   *
   * @throws KernelError `EEXIST` when a child matches `name` (libfdt's rule: `"a"` also
   *   matches `"a@1"`); `ENOMEM` for every other failure (no room in the page, a name libfdt
   *   refuses, a page that is not a valid FDT), as the kernel returns.
   */
  addSubtree(name: string, phys: number, size: number): void {
    const physBytes = u64LeBytes(phys);
    const sizeBytes = u64LeBytes(size);
    const editor = this.#open();
    if (editor === undefined) throw new KernelError("ENOMEM", "the root FDT cannot be opened");
    let node: number;
    try {
      node = editor.addSubnode(0, name);
    } catch (error) {
      this.#pack(editor);
      if (error instanceof FdtError && error.code === "FDT_ERR_EXISTS") throw new KernelError("EEXIST", `sub-tree "${name}" already exists`);
      throw new KernelError("ENOMEM", `cannot add sub-tree "${name}": ${String(error)}`);
    }
    this.#sync(editor);
    try {
      editor.setprop(node, KHO_SUB_TREE_PROP_NAME, physBytes);
      this.#sync(editor);
      editor.setprop(node, KHO_SUB_TREE_SIZE_PROP_NAME, sizeBytes);
      this.#sync(editor);
    } catch (error) {
      editor.delNode(node);
      this.#sync(editor);
      this.#pack(editor);
      throw new KernelError("ENOMEM", `cannot set the properties of sub-tree "${name}": ${String(error)}`);
    }
    this.#pack(editor);
  }

  /**
   * `kho_remove_subtree`: delete the first child whose `preserved-data` is 8 bytes equal to
   * `phys`. Returns whether one was found; never fails (as in the kernel).
   */
  removeSubtree(phys: number): boolean {
    const editor = this.#open();
    if (editor === undefined) return false;
    let found = false;
    try {
      const r = editor.offsets;
      for (let off = r.firstSubnode(0); off >= 0; off = r.nextSubnode(off)) {
        const value = r.getprop(off, KHO_SUB_TREE_PROP_NAME);
        if (value?.length !== 8 || readU64Le(value) !== phys) continue;
        editor.delNode(off);
        this.#sync(editor);
        found = true;
        break;
      }
    } catch {
      // A walk libfdt gives up on ends the loop, as a negative offset does in C.
    }
    this.#pack(editor);
    return found;
  }

  /** The sub-trees in document order (newest first), read as the next kernel reads them. */
  subtrees(): KhoSubtree[] {
    return listKhoSubtrees(this.page);
  }

  /** `fdt_open_into(fdt, fdt, PAGE_SIZE)` in place; undefined when libfdt refuses. */
  #open(): FdtEditor | undefined {
    let editor: FdtEditor;
    try {
      editor = FdtEditor.openInto(this.page, KHO_FDT_SIZE);
    } catch {
      return undefined;
    }
    this.#sync(editor);
    return editor;
  }

  #pack(editor: FdtEditor): void {
    try {
      editor.pack();
    } catch {
      return;
    }
    this.#sync(editor);
  }

  /** Copy the editor's current layout over the page, leaving the page's tail as it was. */
  #sync(editor: FdtEditor): void {
    const buf = editor.buffer;
    this.page.set(buf.subarray(0, dataEnd(buf)), 0);
  }
}

/** The verdict of {@link checkKhoRootFdt}. */
export type KhoRootFdtCheck =
  | { readonly valid: true; readonly memoryMapPhys: number }
  | { readonly valid: false; readonly reason: string };

/**
 * `fdt_stringlist_contains` as libfdt 1.6.1 does it: compares `len + 1` bytes at the start of
 * each string, so the terminating NUL may be the byte just after the property.
 */
function stringListContains(blob: Uint8Array, valueAt: number, valueLen: number, wanted: Uint8Array): boolean {
  let at = valueAt;
  let left = valueLen;
  while (left >= wanted.length) {
    let same = at + wanted.length < blob.length && blob[at + wanted.length] === 0;
    for (let i = 0; same && i < wanted.length; i++) same = blob[at + i] === wanted[i];
    if (same) return true;
    let nul = -1;
    for (let i = 0; i < left; i++) {
      if (blob[at + i] === 0) {
        nul = i;
        break;
      }
    }
    if (nul < 0) return false;
    left -= nul + 1;
    at += nul + 1;
  }
  return false;
}

/**
 * What the next kernel checks before reviving (`kho_populate`): `fdt_check_header`, root
 * `compatible` containing `"kho-v4"` (`fdt_node_check_compatible`), and a
 * `preserved-memory-map` of exactly 8 bytes that is not 0 (`kho_get_mem_map_phys`). Never
 * throws: every failure is a reason to disable revival.
 */
export function checkKhoRootFdt(blob: Uint8Array): KhoRootFdtCheck {
  const r = new FdtOffsets(blob);
  const header = r.rawCheckHeader();
  if (header < 0) return { valid: false, reason: `fdt_check_header failed (${header})` };
  try {
    const compatible = r.getprop(0, "compatible");
    if (compatible === undefined) return { valid: false, reason: "the root has no compatible property" };
    const wanted = new TextEncoder().encode(KHO_FDT_COMPATIBLE);
    if (!stringListContains(blob, compatible.byteOffset - blob.byteOffset, compatible.length, wanted)) {
      return { valid: false, reason: `the root is not compatible with "${KHO_FDT_COMPATIBLE}"` };
    }
    const map = r.getprop(0, KHO_FDT_MEMORY_MAP_PROP_NAME);
    if (map?.length !== 8) return { valid: false, reason: `"${KHO_FDT_MEMORY_MAP_PROP_NAME}" is missing or not 8 bytes` };
    const phys = readU64Le(map);
    if (phys === 0) return { valid: false, reason: `"${KHO_FDT_MEMORY_MAP_PROP_NAME}" is 0` };
    if (phys === undefined) return { valid: false, reason: `"${KHO_FDT_MEMORY_MAP_PROP_NAME}" points beyond ${PHYS_ADDR_BITS} bits` };
    return { valid: true, memoryMapPhys: phys };
  } catch (error) {
    return { valid: false, reason: `the root node cannot be read: ${String(error)}` };
  }
}

/**
 * `kho_retrieve_subtree(name)` on the previous kernel's root FDT.
 *
 * @throws KernelError `ENOENT` when there is no such child (or libfdt cannot find it in a
 *   damaged blob); `EINVAL` when `preserved-data` or `blob-size` is missing or not 8 bytes
 *   (and, beyond the kernel, when a value does not fit 2^53: no memory holds it).
 */
export function retrieveKhoSubtree(blob: Uint8Array, name: string): { phys: number; size: number } {
  const r = new FdtOffsets(blob);
  let node: number;
  try {
    node = r.subnodeOffset(0, name);
  } catch {
    node = -1;
  }
  if (node < 0) throw new KernelError("ENOENT", `no sub-tree "${name}"`);
  const read = (prop: string): number => {
    let value: Uint8Array | undefined;
    try {
      value = r.getprop(node, prop);
    } catch {
      value = undefined;
    }
    if (value?.length !== 8) throw new KernelError("EINVAL", `sub-tree "${name}": "${prop}" is missing or not 8 bytes`);
    const n = readU64Le(value);
    if (n === undefined) throw new KernelError("EINVAL", `sub-tree "${name}": "${prop}" does not fit 53 bits`);
    return n;
  };
  const phys = read(KHO_SUB_TREE_PROP_NAME);
  const size = read(KHO_SUB_TREE_SIZE_PROP_NAME);
  return { phys, size };
}

/**
 * The root's children that carry both properties as 8-byte values, in document order.
 * Tolerant: a child that is not a sub-tree is skipped, a damaged blob ends the list.
 */
export function listKhoSubtrees(blob: Uint8Array): KhoSubtree[] {
  const out: KhoSubtree[] = [];
  const r = new FdtOffsets(blob);
  if (r.rawCheckHeader() < 0) return out;
  try {
    for (let off = r.firstSubnode(0); off >= 0; off = r.nextSubnode(off)) {
      const data = r.getprop(off, KHO_SUB_TREE_PROP_NAME);
      const size = r.getprop(off, KHO_SUB_TREE_SIZE_PROP_NAME);
      if (data?.length !== 8 || size?.length !== 8) continue;
      const phys = readU64Le(data);
      const bytes = readU64Le(size);
      if (phys === undefined || bytes === undefined) continue;
      out.push({ name: r.getName(off), phys, size: bytes });
    }
  } catch {
    // libfdt stops at the first error; so does the list.
  }
  return out;
}
