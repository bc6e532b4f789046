import { FdtEditor, FdtSequentialWriter } from "@liveupdate/fdt-codec";
import { describe, expect, it } from "vitest";
import { KHO_FDT_SIZE, KHO_KEXEC_METADATA_NAME, KHO_KEXEC_METADATA_SIZE, MAX_PAGE_ORDER, PAGE_SIZE } from "../src/abi.js";
import { KernelError } from "../src/errors.js";
import { decodeKexecMetadata } from "../src/kexec-metadata.js";
import { KhoIncoming } from "../src/kho-incoming.js";
import { checkKhoRootFdt, u64LeBytes } from "../src/kho-root-fdt.js";
import { Machine } from "../src/machine.js";
import { PhysicalMemory } from "../src/memory.js";

const MiB = 2 ** 20;

function catchError(f: () => unknown): unknown {
  try {
    f();
  } catch (error) {
    return error;
  }
  throw new Error("expected a throw");
}

function errnoOf(f: () => unknown): string {
  const error = catchError(f);
  expect(error).toBeInstanceOf(KernelError);
  return (error as KernelError).errno;
}

/** A small machine with one scratch region at 32..36 MiB. */
function small(): Machine {
  return Machine.boot({ memory: "64 MiB", scratch: [{ start: 32 * MiB, size: 4 * MiB }] });
}

function runKey(r: { phys: number; order: number }): string {
  return `${r.phys.toString(16)}/${r.order}`;
}

describe("outgoing: preserve errors", () => {
  it("anything overlapping scratch is EINVAL and changes nothing", () => {
    const m = small();
    const before = m.kho.preservedRuns().map(runKey);
    expect(errnoOf(() => { m.kho.preserveFolio(33 * MiB, 0); })).toBe("EINVAL");
    expect(errnoOf(() => { m.kho.preserveFolio(32 * MiB - 4 * MiB, MAX_PAGE_ORDER + 1); })).toBe("EINVAL"); // ends inside
    expect(errnoOf(() => { m.kho.preservePages(36 * MiB - PAGE_SIZE, 2); })).toBe("EINVAL"); // last page inside
    expect(errnoOf(() => { m.kho.preservePages(31 * MiB, 512); })).toBe("EINVAL"); // first page before, rest inside
    expect(m.kho.preservedRuns().map(runKey)).toEqual(before);
    m.kho.preservePages(36 * MiB, 1); // just after: fine
    m.kho.preserveFolio(32 * MiB - PAGE_SIZE, 0); // just before: fine
  });

  it("misaligned or outside-memory folios are EINVAL", () => {
    const m = small();
    expect(errnoOf(() => { m.kho.preserveFolio(PAGE_SIZE, 1); })).toBe("EINVAL");
    expect(errnoOf(() => { m.kho.preserveFolio(1, 0); })).toBe("EINVAL");
    expect(errnoOf(() => { m.kho.preserveFolio(64 * MiB, 0); })).toBe("EINVAL");
    expect(errnoOf(() => { m.kho.preservePages(63 * MiB, 512); })).toBe("EINVAL");
    expect(errnoOf(() => { m.kho.preservePages(PAGE_SIZE, -1); })).toBe("EINVAL");
  });

  it("kho_alloc_preserve: 0 is EINVAL, above MAX_PAGE_ORDER E2BIG, else a zeroed preserved folio", () => {
    const m = small();
    expect(errnoOf(() => m.kho.allocPreserve(0))).toBe("EINVAL");
    expect(errnoOf(() => m.kho.allocPreserve(-5))).toBe("EINVAL");
    expect(errnoOf(() => m.kho.allocPreserve(PAGE_SIZE * 2 ** MAX_PAGE_ORDER + 1))).toBe("E2BIG");
    const big = m.kho.allocPreserve(PAGE_SIZE * 2 ** MAX_PAGE_ORDER);
    expect(m.kho.isPreserved(big, MAX_PAGE_ORDER)).toBe(true);
    const odd = m.kho.allocPreserve(3 * PAGE_SIZE + 1); // get_order -> 2
    expect(m.kho.isPreserved(odd, 2)).toBe(true);
    expect(m.memory.read(odd, 4 * PAGE_SIZE)).toEqual(new Uint8Array(4 * PAGE_SIZE));
    m.kho.unpreserveFree(odd, 3 * PAGE_SIZE + 1);
    expect(m.kho.isPreserved(odd, 2)).toBe(false);
    expect(errnoOf(() => { m.kho.unpreserveFree(odd, 3 * PAGE_SIZE + 1); })).toBe("EINVAL"); // freed already
    expect(errnoOf(() => { m.kho.unpreserveFree(big, PAGE_SIZE); })).toBe("EINVAL"); // wrong size
    m.kho.unpreserveFree(0, 10); // NULL: nothing
  });

  it("kho_alloc_preserve on a full machine is ENOMEM and leaves no folio behind", () => {
    const m = Machine.boot({ memory: "8 MiB", scratch: "none" });
    const free = m.allocator.freePages;
    const taken: number[] = [];
    for (;;) {
      try {
        taken.push(m.kho.allocFolio(0));
      } catch {
        break;
      }
    }
    expect(taken.length).toBe(free);
    expect(errnoOf(() => m.kho.allocPreserve(PAGE_SIZE))).toBe("ENOMEM");
  });

  it("preservePages splits into the kernel's aligned runs", () => {
    const m = small();
    const start = 0x123; // pfn
    const count = 0x1f5;
    m.kho.preservePages(start * PAGE_SIZE, count);
    const own = new Set([m.kho.fdtPhys, m.kho.kexecMetadataPhys].map((p) => `${p.toString(16)}/0`));
    const runs = m.kho.preservedRuns().filter((r) => !own.has(runKey(r)));
    runs.sort((a, b) => a.phys - b.phys);
    // From first principles: the runs tile the range, each aligned to its size, and each as
    // large as alignment and the remaining length allow.
    let pfn = start;
    for (const r of runs) {
      expect(r.phys).toBe(pfn * PAGE_SIZE);
      const size = 2 ** r.order;
      expect(pfn % size).toBe(0);
      const doubled = 2 * size;
      expect(pfn % doubled !== 0 || pfn + doubled > start + count).toBe(true);
      pfn += size;
    }
    expect(pfn).toBe(start + count);
    m.kho.unpreservePages(start * PAGE_SIZE, count);
    expect(m.kho.preservedRuns().filter((r) => !own.has(runKey(r)))).toEqual([]);
  });

  it("preservePages rolls back the runs it added when a map node cannot be allocated", () => {
    const m = Machine.boot({ memory: "16 MiB", scratch: "none" });
    // The existing order-0 runs (FDT, metadata) have a path; an order-1 run needs new nodes.
    for (;;) {
      try {
        m.kho.allocFolio(0);
      } catch {
        break;
      }
    }
    const before = m.kho.preservedRuns().map(runKey);
    const nodes = m.kho.radix.nodePages().length;
    // pfn 5 (order 0, existing leaf), then pfn 6 (order 1: no path, ENOMEM).
    expect(errnoOf(() => { m.kho.preservePages(5 * PAGE_SIZE, 4); })).toBe("ENOMEM");
    expect(m.kho.preservedRuns().map(runKey)).toEqual(before);
    expect(m.kho.isPreserved(5 * PAGE_SIZE, 0)).toBe(false);
    expect(m.kho.radix.nodePages().length).toBe(nodes);
  });
});

describe("outgoing: root FDT and sub-trees", () => {
  it("boots with kexec-metadata as its only sub-tree, a 73-byte blob as Linux 7.2 writes it", () => {
    const m = Machine.boot({ memory: "64 MiB", release: "7.2.99-test" });
    expect(m.kho.subtrees()).toEqual([{ name: KHO_KEXEC_METADATA_NAME, phys: m.kho.kexecMetadataPhys, size: KHO_KEXEC_METADATA_SIZE }]);
    const blob = m.memory.read(m.kho.kexecMetadataPhys, KHO_KEXEC_METADATA_SIZE);
    const view = new DataView(blob.buffer);
    expect(view.getUint32(0, true)).toBe(1);
    expect(new TextDecoder().decode(blob.subarray(4, 4 + 11))).toBe("7.2.99-test");
    expect(blob.subarray(4 + 11, 69)).toEqual(new Uint8Array(69 - 15));
    expect(view.getUint32(69, true)).toBe(1);
    expect(decodeKexecMetadata(blob, KHO_KEXEC_METADATA_SIZE)).toEqual({ version: 1, previousRelease: "7.2.99-test", kexecCount: 1 });
    // The FDT page itself is preserved (kho_alloc_preserve), the map root is not.
    expect(m.kho.isPreserved(m.kho.fdtPhys, 0)).toBe(true);
    expect(checkKhoRootFdt(m.memory.read(m.kho.fdtPhys, KHO_FDT_SIZE))).toEqual({ valid: true, memoryMapPhys: m.kho.radix.rootPhys });
  });

  it("a duplicate name is EEXIST (libfdt's unit-address match too) and leaves the FDT as it was", () => {
    const m = small();
    m.kho.addSubtree("dev@1", 0x10000, 8);
    const fdt = m.kho.rootFdt();
    expect(errnoOf(() => { m.kho.addSubtree("dev@1", 0x20000, 8); })).toBe("EEXIST");
    expect(errnoOf(() => { m.kho.addSubtree("dev", 0x20000, 8); })).toBe("EEXIST"); // "dev" matches "dev@1"
    expect(errnoOf(() => { m.kho.addSubtree(KHO_KEXEC_METADATA_NAME, 0x20000, 8); })).toBe("EEXIST");
    expect(m.kho.rootFdt()).toEqual(fdt);
    m.kho.addSubtree("dev@2", 0x30000, 8); // another unit address is another node
    expect(m.kho.subtrees().map((s) => s.name)).toEqual(["dev@2", "dev@1", KHO_KEXEC_METADATA_NAME]);
  });

  it("a full root page is ENOMEM; what was there stays valid", () => {
    const m = small();
    let added = 0;
    let error: unknown;
    for (let i = 0; i < 200 && error === undefined; i++) {
      try {
        m.kho.addSubtree(`subsystem-with-a-longish-name-${i}`, 0x1000 * (i + 1), i);
        added++;
      } catch (e) {
        error = e;
      }
    }
    expect(error).toMatchObject({ errno: "ENOMEM" });
    expect(added).toBeGreaterThan(10);
    const fdt = m.memory.read(m.kho.fdtPhys, KHO_FDT_SIZE);
    expect(checkKhoRootFdt(fdt).valid).toBe(true);
    expect(m.kho.subtrees().length).toBe(added + 1);
  });

  it("removeSubtree drops the node with that blob address; the next kernel cannot retrieve it", () => {
    const m = small();
    const a = m.kho.allocPreserve(100);
    const b = m.kho.allocPreserve(200);
    m.kho.addSubtree("a", a, 100);
    m.kho.addSubtree("b", b, 200);
    expect(m.kho.removeSubtree(a)).toBe(true);
    expect(m.kho.removeSubtree(a)).toBe(false);
    expect(m.kho.subtrees().map((s) => s.name)).toEqual(["b", KHO_KEXEC_METADATA_NAME]);
    const next = m.kexec();
    expect(errnoOf(() => next.incoming.retrieveSubtree("a"))).toBe("ENOENT");
    expect(next.incoming.retrieveSubtree("b")).toEqual({ phys: b, size: 200 });
  });
});

describe("incoming: retrieve and restore", () => {
  it("a cold boot has nothing: retrieve ENOENT, restore EINVAL, kexec count 0", () => {
    const m = small();
    expect(m.incoming.state).toBe("cold");
    expect(m.kexecCount).toBe(0);
    expect(errnoOf(() => m.incoming.retrieveSubtree(KHO_KEXEC_METADATA_NAME))).toBe("ENOENT");
    expect(errnoOf(() => m.incoming.restoreFolio(m.kho.fdtPhys))).toBe("EINVAL");
  });

  it("retrieve: missing name ENOENT; preserved-data or blob-size missing or not 8 bytes EINVAL", () => {
    const m = small();
    // Edit the root FDT in memory as a buggy kernel could have.
    const editor = FdtEditor.openInto(m.memory.read(m.kho.fdtPhys, KHO_FDT_SIZE), KHO_FDT_SIZE);
    const short = editor.addSubnode(0, "short-data");
    editor.setprop(short, "preserved-data", new Uint8Array(4));
    editor.setprop(short, "blob-size", u64LeBytes(8));
    const noSize = editor.addSubnode(0, "no-size");
    editor.setprop(noSize, "preserved-data", u64LeBytes(0x5000));
    const longSize = editor.addSubnode(0, "long-size");
    editor.setprop(longSize, "preserved-data", u64LeBytes(0x5000));
    editor.setprop(longSize, "blob-size", new Uint8Array(12));
    editor.addSubnode(0, "empty");
    editor.pack();
    m.memory.write(m.kho.fdtPhys, editor.bytes());
    const next = m.kexec();
    expect(next.incoming.state).toBe("revived");
    expect(errnoOf(() => next.incoming.retrieveSubtree("missing"))).toBe("ENOENT");
    for (const name of ["short-data", "no-size", "long-size", "empty"]) {
      expect(errnoOf(() => next.incoming.retrieveSubtree(name))).toBe("EINVAL");
    }
    expect(next.incoming.retrieveSubtree(KHO_KEXEC_METADATA_NAME).size).toBe(KHO_KEXEC_METADATA_SIZE);
  });

  it("a folio restores once; restore_pages needs every run of its split, else changes nothing", () => {
    const m = small();
    const folio = m.kho.allocFolio(3);
    m.kho.preserveFolio(folio, 3);
    const pages = m.kho.allocFolio(4);
    const first = pages + PAGE_SIZE; // 15 pages from pfn+1: runs o0, o1, o2, o3
    m.kho.preservePages(first, 15);
    const next = m.kexec();
    const inc = next.incoming;
    expect(errnoOf(() => inc.restoreFolio(folio + PAGE_SIZE))).toBe("EINVAL"); // tail page: no stamp
    expect(inc.restoreFolio(folio)).toBe(3);
    expect(errnoOf(() => inc.restoreFolio(folio))).toBe("EINVAL");
    // A wrong count changes the split: refused, and the stamps are all still there.
    const stamped = inc.stampedCount;
    expect(errnoOf(() => { inc.restorePages(first, 16); })).toBe("EINVAL");
    expect(errnoOf(() => { inc.restorePages(first, 14); })).toBe("EINVAL");
    expect(inc.stampedCount).toBe(stamped);
    inc.restorePages(first, 15);
    expect(inc.stampedCount).toBe(stamped - 4);
    expect(errnoOf(() => { inc.restorePages(first, 15); })).toBe("EINVAL");
    // Restored pages belong to the new kernel: each page can be freed on its own.
    for (let i = 0; i < 15; i++) next.kho.freeFolio(first + i * PAGE_SIZE, 0);
    expect(errnoOf(() => { next.kho.freeFolio(first, 0); })).toBe("EINVAL");
    next.kho.freeFolio(folio, 3);
  });

  it("restoreFree gives a kho_alloc_preserve block back to the new kernel's allocator", () => {
    const m = small();
    const p = m.kho.allocPreserve(5000);
    const next = m.kexec();
    const free = next.allocator.freePages;
    next.incoming.restoreFree(p);
    expect(next.allocator.freePages).toBe(free + 2);
    expect(errnoOf(() => { next.incoming.restoreFree(p); })).toBe("EINVAL");
  });
});

describe("incoming: a bad handover disables revival and never throws", () => {
  /** Root FDTs a broken previous kernel might leave, built like the kernel's. */
  function rootFdt(props: { compatible?: Uint8Array; map?: Uint8Array }): Uint8Array {
    const w = new FdtSequentialWriter(KHO_FDT_SIZE);
    w.finishReservemap();
    w.beginNode("");
    if (props.compatible) w.property("compatible", props.compatible);
    if (props.map) w.property("preserved-memory-map", props.map);
    w.endNode();
    return w.finish().slice();
  }
  const str = (s: string): Uint8Array => new TextEncoder().encode(s);

  const cases: [string, (m: Machine) => void][] = [
    ["a zeroed page", (m) => { m.memory.zero(m.kho.fdtPhys, KHO_FDT_SIZE); }],
    ["another compatible", (m) => { m.memory.write(m.kho.fdtPhys, rootFdt({ compatible: str("kho-v3\0"), map: u64LeBytes(m.kho.radix.rootPhys) })); }],
    ["no compatible", (m) => { m.memory.write(m.kho.fdtPhys, rootFdt({ map: u64LeBytes(m.kho.radix.rootPhys) })); }],
    ["a map pointer of 4 bytes", (m) => { m.memory.write(m.kho.fdtPhys, rootFdt({ compatible: str("kho-v4\0"), map: new Uint8Array(4) })); }],
    ["a map pointer of 0", (m) => { m.memory.write(m.kho.fdtPhys, rootFdt({ compatible: str("kho-v4\0"), map: u64LeBytes(0) })); }],
    ["no map pointer", (m) => { m.memory.write(m.kho.fdtPhys, rootFdt({ compatible: str("kho-v4\0") })); }],
    [
      "a totalsize beyond the page",
      (m) => {
        const fdt = m.memory.read(m.kho.fdtPhys, KHO_FDT_SIZE);
        new DataView(fdt.buffer).setUint32(4, 2 * KHO_FDT_SIZE);
        m.memory.write(m.kho.fdtPhys, fdt);
      },
    ],
    [
      "a truncated struct block",
      (m) => {
        const fdt = m.memory.read(m.kho.fdtPhys, KHO_FDT_SIZE);
        const view = new DataView(fdt.buffer);
        view.setUint32(36, 8); // size_dt_struct: the root's compatible is cut
        m.memory.write(m.kho.fdtPhys, fdt);
      },
    ],
    ["a map root outside memory", (m) => { m.memory.write(m.kho.fdtPhys, rootFdt({ compatible: str("kho-v4\0"), map: u64LeBytes(2 ** 40) })); }],
    ["a map with a cycle", (m) => { m.memory.writeU64(m.kho.radix.rootPhys + 8 * 100, m.kho.radix.rootPhys); }],
    [
      "a map bit outside memory",
      (m) => {
        // Level-0 leaf of the order-0 runs: set a bit 64 MiB (past the end) further on.
        const leaf = m.kho.radix.nodePages().find((n) => n.level === 0)!.phys;
        const bit = (64 * MiB) / PAGE_SIZE + 3;
        m.memory.write(leaf + (bit >>> 3), Uint8Array.of(1 << (bit & 7)));
      },
    ],
  ];

  it.each(cases)("%s", (_name, damage) => {
    const m = small();
    const p = m.kho.allocPreserve(PAGE_SIZE);
    m.memory.write(p, Uint8Array.of(1, 2, 3));
    m.kho.addSubtree("mine", p, PAGE_SIZE);
    damage(m);
    const next = m.kexec();
    expect(next.incoming.state).toBe("disabled");
    expect(next.incoming.disabledReason).toEqual(expect.any(String));
    expect(next.incoming.stampedRuns()).toEqual([]);
    expect(errnoOf(() => next.incoming.retrieveSubtree("mine"))).toBe("ENOENT");
    expect(errnoOf(() => next.incoming.restoreFolio(p))).toBe("EINVAL");
    expect(next.kexecCount).toBe(0);
    // Nothing was reserved: the allocator has all memory but page 0 and scratch.
    expect(next.allocator.managedPages).toBe((64 * MiB - 4 * MiB) / PAGE_SIZE - 1);
    // And the machine works: a second kexec revives.
    const again = next.kexec();
    expect(again.incoming.state).toBe("revived");
  });

  it("the radix failure is kept as a typed error", () => {
    const m = small();
    m.memory.writeU64(m.kho.radix.rootPhys + 8 * 100, m.kho.radix.rootPhys);
    const next = m.kexec();
    expect(next.incoming.mapError).toMatchObject({ format: "kho-radix", rule: "node-repeated", offset: m.kho.radix.rootPhys + 800 });
  });

  it("a compatible list holding kho-v4 among others is accepted (fdt_node_check_compatible)", () => {
    const m = small();
    m.memory.write(m.kho.fdtPhys, rootFdt({ compatible: str("vendor,kho\0kho-v4\0"), map: u64LeBytes(m.kho.radix.rootPhys) }));
    expect(m.kexec().incoming.state).toBe("revived");
  });

  it("KhoIncoming over arbitrary memory never throws", () => {
    const memory = new PhysicalMemory([{ start: 0, size: MiB }], "poison");
    for (const fdtPhys of [0, PAGE_SIZE, MiB, -1, 0.5, MiB - 8]) {
      const inc = new KhoIncoming(memory, { fdtPhys });
      expect(inc.state).toBe("disabled");
    }
    expect(new KhoIncoming(memory, { fdtPhys: 0, fdtSize: 2 ** 40 }).state).toBe("disabled");
  });
});
