/**
 * `@liveupdate/luo-core`: the Live Update Orchestrator (`luo-v5`, Linux 7.2) modelled byte for
 * byte.
 *
 * - the format: `abi.ts` (layouts, constants, ioctl numbers), {@link decodeLuoState} (what
 *   the next kernel would see, non-consuming, hostile-input checked)
 * - the contract with handlers: {@link FileHandler}, {@link LuoFile}, {@link FileOpArgs},
 *   FLBs ({@link LiveUpdateFlb}); {@link HandlerRegistry}
 * - the kernel: {@link LiveUpdate} (boot / attach / open / kexec / preflight), the device and
 *   session files ({@link LiveUpdateDevice}, {@link LuoSession}), the fd table, the ioctl
 *   adapter ({@link luoIoctl})
 *
 * @packageDocumentation
 */
export * from "./abi.js";
export type { FileHandler, FileOpArgs, LuoFile, LiveUpdateFlb, FlbOpArgs, FlbAccess } from "./handler.js";
export { HandlerRegistry, type RegistryLike } from "./registry.js";
export {
  decodeLuoState,
  readLuoHeader,
  walkLuoSessions,
  readFlbTable,
  type LuoStateView,
  type LuoSerView,
  type LuoHeader,
  type LuoSessionView,
  type LuoFileView,
  type LuoFlbView,
  type LuoFlbEntryView,
  type LuoReadOptions,
  type LuoFileVisitor,
} from "./decode.js";
export { FdTable, FIRST_FD } from "./fd-table.js";
export type { LuoIncomingState, LuoIncomingStatus, PreflightProblem } from "./lifecycle.js";
export { LiveUpdateDevice, LuoSession, type LuoSessionFileInfo } from "./device.js";
export {
  LiveUpdate,
  findUnretrievable,
  type HandlerList,
  type LiveUpdateOptions,
  type LiveUpdateBootOptions,
  type LiveUpdateKexecOptions,
  type LuoSessionSummary,
} from "./liveupdate.js";
export { luoIoctl, ioctlErrnoName, ENOTTY, type IoctlErrno } from "./ioctl.js";
