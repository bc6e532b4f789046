/**
 * `@liveupdate/memfd-luo-v2`: the Linux 7.x memfd file handler, compatible `"memfd-v2"`.
 *
 * - the format: `abi.ts` (the 48-byte `memfd_luo_ser`, its offsets, the seals it carries);
 *   the folio records and their `kho_vmalloc` array are `@liveupdate/memfd`'s
 * - the handler: {@link MemfdV2Handler} / {@link memfdV2} (preserve, freeze, unpreserve,
 *   retrieve, finish), the lifecycle spelled out in `handler.ts`
 * - the decoder: {@link decodeMemfdV2}, non-consuming, for inspectors and images
 *
 * @packageDocumentation
 */
export * from "./abi.js";
export { decodeMemfdV2, type MemfdV2Decoded } from "./decode.js";
export { MemfdV2Handler, memfdV2, type MemfdV2PreservedState } from "./handler.js";
