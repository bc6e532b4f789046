// The TypeScript side, as the built package (dist/) exposes it. Every operation the bench
// times goes through here, so this file is the one place that knows the codec's API.
//
// Each export is taken from dist/index.js when the index exports it, otherwise from its own
// module file under dist/ (the index may lag behind the modules). An operation whose
// functions are missing is null, and run.mjs reports its row as n/a.
import { existsSync } from "node:fs";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { CALL_BEGIN_NODE, CALL_END_NODE } from "./calls.mjs";

/**
 * @typedef {object} Codec
 * @property {string} source where the functions came from
 * @property {string[]} missing exports that could not be found
 * @property {((bytes: Uint8Array) => number) | null} libfdtVerdict libfdtReturnValue(checkLibfdt(bytes)): 0 or a negative libfdt code
 * @property {((bytes: Uint8Array) => number) | null} checkWalk row (a)
 * @property {((calls: import("./calls.mjs").CallList, bufsize: number) => () => Uint8Array) | null} sequentialWriter row (b)
 * @property {((bytes: Uint8Array) => Uint8Array) | null} decodeEncode row (c)
 */

/**
 * @param {string} distDir
 * @param {string} [label] how `source` names distDir (default "dist")
 * @returns {Promise<Codec>}
 */
export async function loadCodec(distDir, label = "dist") {
  /** @type {Record<string, any>} */
  const found = {};
  /** @type {Set<string>} */
  const sources = new Set();
  const load = async (/** @type {string} */ file) => {
    const path = join(distDir, file);
    if (!existsSync(path)) return {};
    try {
      return await import(pathToFileURL(path).href);
    } catch (e) {
      process.stderr.write(`bench: cannot import ${label}/${file}: ${e instanceof Error ? e.message : String(e)}\n`);
      return {};
    }
  };
  const index = await load("index.js");
  const wanted = {
    Fdt: "read.js",
    checkLibfdt: "check-libfdt.js",
    FdtSequentialWriter: "sequential-writer.js",
    decodeTree: "decode-tree.js",
    encodeDtc: "encode-dtc.js",
    libfdtReturnValue: "check-report.js",
  };
  /** @type {string[]} */
  const missing = [];
  for (const [name, file] of Object.entries(wanted)) {
    if (index[name] !== undefined) {
      found[name] = index[name];
      sources.add(`${label}/index.js`);
      continue;
    }
    const mod = await load(file);
    if (mod[name] !== undefined) {
      found[name] = mod[name];
      sources.add(`${label}/${file}`);
    } else missing.push(name);
  }
  const { Fdt, checkLibfdt, FdtSequentialWriter, decodeTree, encodeDtc, libfdtReturnValue } = found;

  return {
    source: [...sources].join(", ") || "nothing",
    missing,
    libfdtVerdict: checkLibfdt && libfdtReturnValue ? (bytes) => libfdtReturnValue(checkLibfdt(bytes)) : null,
    checkWalk: checkLibfdt && Fdt ? makeCheckWalk(checkLibfdt, Fdt) : null,
    sequentialWriter: FdtSequentialWriter ? makeSequentialWriter(FdtSequentialWriter) : null,
    decodeEncode: decodeTree && encodeDtc ? (bytes) => encodeDtc(decodeTree(bytes)) : null,
  };
}

/**
 * Row (a): checkLibfdt, then Fdt.from and a visit of every property reading its name offset,
 * value offset and length into the result (the sink): nodes depth-first in blob order
 * (firstChild / nextSibling / parent, which also reaches a second top-level node), each
 * node's properties (firstProperty / nextProperty), then any orphan properties. Like the C
 * tag walk, this touches every property of the blob.
 */
function makeCheckWalk(/** @type {any} */ checkLibfdt, /** @type {any} */ Fdt) {
  return (/** @type {Uint8Array} */ bytes) => {
    const report = checkLibfdt(bytes);
    if (!report.valid) throw new Error(`checkLibfdt rejects the blob: ${report.problems[0]?.code}`);
    const fdt = Fdt.from(bytes);
    let acc = 0;
    let node = fdt.root;
    while (node >= 0) {
      for (let p = fdt.firstProperty(node); p >= 0; p = fdt.nextProperty(p))
        acc = (acc + fdt.propertyNameOffset(p) + fdt.propertyValueOffset(p) + fdt.propertyLength(p)) | 0;
      let next = fdt.firstChild(node);
      while (next < 0 && node >= 0) {
        next = fdt.nextSibling(node);
        if (next < 0) node = fdt.parent(node);
      }
      node = next;
    }
    for (let p = fdt.firstOrphanProperty; p >= 0; p = fdt.nextProperty(p))
      acc = (acc + fdt.propertyNameOffset(p) + fdt.propertyValueOffset(p) + fdt.propertyLength(p)) | 0;
    return acc;
  };
}

/**
 * Row (b): the pre-extracted call list replayed into FdtSequentialWriter. Returns a function
 * that does the whole sequence (constructor .. finish) once and returns the finished blob.
 */
function makeSequentialWriter(/** @type {any} */ FdtSequentialWriter) {
  return (/** @type {import("./calls.mjs").CallList} */ calls, /** @type {number} */ bufsize) => {
    const { kinds, names, values, reserveMap } = calls;
    const n = kinds.length;
    return () => {
      const w = new FdtSequentialWriter(bufsize, 0);
      for (let i = 0; i < reserveMap.length; i++) w.addReservemapEntry(reserveMap[i].address, reserveMap[i].size);
      w.finishReservemap();
      for (let i = 0; i < n; i++) {
        const kind = kinds[i];
        if (kind === CALL_BEGIN_NODE) w.beginNode(names[i]);
        else if (kind === CALL_END_NODE) w.endNode();
        else w.property(names[i], values[i]);
      }
      return w.finish();
    };
  };
}
