/**
 * `@liveupdate/handler-testkit`: the kit for authors of LUO file handlers.
 *
 * - the vitest suite: {@link describeHandlerConformance} (round trip across kexec, poison
 *   detection, hostile records, compatible-string rules) and {@link describeFixtures}
 * - the checks behind it, callable alone: {@link checkRoundTrip}, {@link checkUnpreserve},
 *   {@link checkForgottenPages}, {@link checkHostileRecords}, {@link checkCompatibleRules}
 * - frozen golden fixtures: {@link freezeFixture}, {@link loadFixture}, {@link listFixtures}
 * - the instruments: {@link watchPoisonReads}, {@link recordingHandler}, {@link delegateHandler}
 *
 * @packageDocumentation
 */
export {
  DEFAULT_MEMORY,
  canonicalJson,
  isTypedError,
  type HandlerSubject,
  type JsonValue,
  type MachineOptions,
  type ConformanceProblem,
} from "./subject.js";
export { SeededRandom } from "./prng.js";
export {
  delegateHandler,
  recordingHandler,
  watchPoisonReads,
  watchedHandler,
  runKey,
  type DelegateHooks,
  type RecordedFile,
  type RecordingHandler,
  type PoisonWatch,
} from "./wrappers.js";
export {
  CONFORMANCE_SESSION,
  MAX_COMPATIBLE_BYTES,
  checkRoundTrip,
  checkUnpreserve,
  checkForgottenPages,
  checkHostileRecords,
  checkCompatibleRules,
  nearMissCompatibles,
  type SeededCheckOptions,
  type ForgottenPagesOptions,
  type ForgottenPagesReport,
  type HostileRecordsOptions,
  type HostileRecordsReport,
  type HostileCase,
} from "./checks.js";
export {
  FIXTURE_FORMAT,
  FIXTURE_SESSION,
  freezeFixture,
  loadFixture,
  listFixtures,
  parseFixtureManifest,
  encodeSparsePages,
  type FixtureManifest,
  type FixtureRun,
  type FixtureFile,
  type FixtureResult,
  type FixtureFileResult,
  type FreezeFixtureOptions,
} from "./fixtures.js";
export { describeHandlerConformance, describeFixtures, type ConformanceOptions } from "./suite.js";
