/**
 * Names: the character rules of the spec and of dtc, and libfdt's name matching
 * (`"cpu"` matches `"cpu@0"` when the caller gave no unit address).
 */

const enum CharClass {
  /** Allowed in a node name (spec). */
  Node = 1,
  /** Allowed in a property name (spec). */
  Prop = 2,
  /** Allowed in a property name by dtc (adds `*`... see below). */
  DtcProp = 4,
  /** Allowed in a node name by dtc. */
  DtcNode = 8,
}

/** Byte -> CharClass bits, built once. */
const CLASS: Uint8Array = (() => {
  const t = new Uint8Array(256);
  const set = (chars: string, bits: number): void => {
    for (let i = 0; i < chars.length; i++) t[chars.charCodeAt(i)]! |= bits;
  };
  const alnum = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";
  set(alnum + ",._+-", CharClass.Node | CharClass.DtcNode);
  set(alnum + ",._+?#-", CharClass.Prop | CharClass.DtcProp);
  // dtc's checks (checks.c) are looser than the spec: `*` in property names, and the same
  // sets otherwise, with no length or first-letter rule.
  set("*", CharClass.DtcProp);
  return t;
})();

/** Whether `c` may appear in a node name before the `@` (spec). */
export function isNodeNameChar(c: number): boolean {
  return (CLASS[c]! & CharClass.Node) !== 0;
}

/** Whether `c` may appear in a property name (spec). */
export function isPropertyNameChar(c: number): boolean {
  return (CLASS[c]! & CharClass.Prop) !== 0;
}

/** Whether `c` may appear in a property name according to dtc (spec plus `*`). */
export function isDtcPropertyNameChar(c: number): boolean {
  return (CLASS[c]! & CharClass.DtcProp) !== 0;
}

/**
 * libfdt's `fdt_nodename_eq_`: does the stored node name `stored` match the path
 * component `wanted`? Exact match, or `wanted` has no `@` and equals `stored` up to its `@`.
 */
export function nodeNameMatches(stored: string, wanted: string): boolean {
  if (!stored.startsWith(wanted)) return false;
  if (stored.length === wanted.length) return true;
  if (wanted.includes("@")) return false;
  return stored.charCodeAt(wanted.length) === 0x40; // '@'
}
