/**
 * The record formats. `luo_file_ser.data` is the physical address of the record, alone in
 * a preserved page (`kho_alloc_preserve`). Little-endian, packed.
 *
 * | off | size | field | v1 (`"acme-counter-v1"`, 32 B) | v2 (`"acme-counter-v2"`, 40 B) |
 * |---|---|---|---|---|
 * | 0 | 8 | `value` | u64 | u64 |
 * | 8 | 8 | `ring_pa` | u64: the ring folio, preserved with order `get_order(capacity * 8)` | same |
 * | 16 | 4 | `capacity` | u32, 1..65536 | same |
 * | 20 | 4 | `head` | u32, < capacity | same |
 * | 24 | 4 | `count` | u32, <= capacity | same |
 * | 28 | 4 | `reserved` | u32, 0 | same |
 * | 32 | 8 | `step` | (absent: 1) | u64, >= 1 |
 */

/** A released format of this package. */
export type AcmeCounterVersion = 1 | 2;

/** The compatible of each format. */
export const ACME_COUNTER_COMPATIBLE: Readonly<Record<AcmeCounterVersion, string>> = Object.freeze({ 1: "acme-counter-v1", 2: "acme-counter-v2" });

/** Record bytes of each format. */
export const ACME_COUNTER_SER_SIZE: Readonly<Record<AcmeCounterVersion, number>> = Object.freeze({ 1: 32, 2: 40 });

export const SER_VALUE_OFFSET = 0;
export const SER_RING_OFFSET = 8;
export const SER_CAPACITY_OFFSET = 16;
export const SER_HEAD_OFFSET = 20;
export const SER_COUNT_OFFSET = 24;
export const SER_RESERVED_OFFSET = 28;
/** v2 only. */
export const SER_STEP_OFFSET = 32;

/** A record's fields, as read (not yet validated). */
export interface AcmeCounterSer {
  readonly value: bigint;
  readonly ringPa: bigint;
  readonly capacity: number;
  readonly head: number;
  readonly count: number;
  readonly reserved: number;
  readonly step: bigint;
}

/** Encode a record of `version` (v1 drops `step`, which must then be 1). */
export function encodeAcmeCounterSer(version: AcmeCounterVersion, ser: AcmeCounterSer): Uint8Array {
  const out = new Uint8Array(ACME_COUNTER_SER_SIZE[version]);
  const v = new DataView(out.buffer);
  v.setBigUint64(SER_VALUE_OFFSET, ser.value, true);
  v.setBigUint64(SER_RING_OFFSET, ser.ringPa, true);
  v.setUint32(SER_CAPACITY_OFFSET, ser.capacity, true);
  v.setUint32(SER_HEAD_OFFSET, ser.head, true);
  v.setUint32(SER_COUNT_OFFSET, ser.count, true);
  v.setUint32(SER_RESERVED_OFFSET, ser.reserved, true);
  if (version === 2) v.setBigUint64(SER_STEP_OFFSET, ser.step, true);
  return out;
}

/** Decode the record bytes of `version` (`bytes` is exactly the record). */
export function decodeAcmeCounterSer(version: AcmeCounterVersion, bytes: Uint8Array): AcmeCounterSer {
  const v = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  return {
    value: v.getBigUint64(SER_VALUE_OFFSET, true),
    ringPa: v.getBigUint64(SER_RING_OFFSET, true),
    capacity: v.getUint32(SER_CAPACITY_OFFSET, true),
    head: v.getUint32(SER_HEAD_OFFSET, true),
    count: v.getUint32(SER_COUNT_OFFSET, true),
    reserved: v.getUint32(SER_RESERVED_OFFSET, true),
    step: version === 2 ? v.getBigUint64(SER_STEP_OFFSET, true) : 1n,
  };
}
