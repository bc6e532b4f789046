/**
 * An example third-party LUO file handler package: the acme counter ({@link CounterFile})
 * and its handlers {@link acmeCounterV1} / {@link acmeCounterV2}, built only on the public
 * APIs of `@liveupdate/kho` and `@liveupdate/luo-core`.
 *
 * The handlers are named exports, so `luo matrix --handler <this package>/dist/index.js`
 * finds both; its named export `matrixSubjects` gives the matrix counters to preserve
 * with them (instead of memfds, which they do not take).
 *
 * @packageDocumentation
 */
export * from "./abi.js";
export { CounterFile, COUNTER_MAX_CAPACITY, COUNTER_SLOT_BYTES, ringOrder, type CounterOptions, type CounterState } from "./counter.js";
export { AcmeCounterHandler, acmeCounterV1, acmeCounterV2 } from "./handler.js";
export { counterSnapshot, matrixSubjects, v1Subject, v2Subject, type CounterSnapshot, type CounterSubject } from "./subjects.js";
