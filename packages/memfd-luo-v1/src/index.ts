/**
 * `@liveupdate/memfd-luo-v1`: the Linux 6.19 memfd file handler, compatible `"memfd-v1"`.
 *
 * - the format: `abi.ts` (the 40-byte `memfd_luo_ser` and its offsets);
 *   the folio records and their `kho_vmalloc` array are `@liveupdate/memfd`'s
 * - the handler: {@link MemfdV1Handler} / {@link memfdV1} (preserve, freeze, unpreserve,
 *   retrieve, finish), the lifecycle spelled out in `handler.ts`
 * - the decoder: {@link decodeMemfdV1}, non-consuming, for inspectors and images
 *
 * @packageDocumentation
 */
export * from "./abi.js";
export { decodeMemfdV1, type MemfdV1Decoded } from "./decode.js";
export { MemfdV1Handler, memfdV1, type MemfdV1PreservedState } from "./handler.js";
