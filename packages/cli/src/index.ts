/**
 * `@liveupdate/cli`: the `luo` command line, also usable as a library (`run(argv)`).
 *
 * @packageDocumentation
 */
export { run } from "./main.js";
export type { RunIO } from "./io.js";
