/**
 * What a check returns: a verdict and the problems found, each naming the libfdt error
 * code a C caller would see (or the closest one), the byte offset in the blob, a stable
 * rule id and a readable message.
 *
 * `checkLibfdt` reports at most one problem (libfdt stops at the first); `checkStrict`
 * reports every problem it finds, up to {@link FDT_MAX_PROBLEMS}.
 */
import { FDT_ERR, FdtError, type FdtErrorCode } from "./errors.js";

/** One broken rule. */
export interface FdtProblem {
  /** libfdt's error code for this failure, or the closest one for rules libfdt does not check. */
  readonly code: FdtErrorCode;
  /** Byte offset in the blob where the problem was found (a header field, a token, a byte). */
  readonly offset: number;
  /** Stable identifier of the rule, e.g. `"header.magic"`, `"struct.token"`, `"name.node-chars"`. */
  readonly rule: string;
  /** Human-readable description, with the values involved. */
  readonly message: string;
}

/** The verdict of a check. `valid` is true exactly when `problems` is empty. */
export interface FdtCheckReport {
  readonly valid: boolean;
  readonly problems: readonly FdtProblem[];
}

/** `checkStrict` stops collecting after this many problems. */
export const FDT_MAX_PROBLEMS = 1000;

/** The report of a valid blob. Shared and frozen: checks return it without allocating. */
export const FDT_VALID_REPORT: FdtCheckReport = Object.freeze({
  valid: true,
  problems: Object.freeze([]),
});

/** A report holding one problem. */
export function singleProblemReport(code: FdtErrorCode, offset: number, rule: string, message: string): FdtCheckReport {
  return { valid: false, problems: [{ code, offset, rule, message }] };
}

/**
 * The value libfdt's C API would return for this report: 0 when valid, otherwise the
 * negated code of the first problem (e.g. -11 for `FDT_ERR_BADSTRUCTURE`).
 */
export function libfdtReturnValue(report: FdtCheckReport): number {
  const first = report.problems[0];
  return first === undefined ? 0 : -FDT_ERR[first.code];
}

/** The problem as a throwable {@link FdtError}. */
export function problemToError(problem: FdtProblem): FdtError {
  return new FdtError(problem.code, problem.offset, problem.rule, problem.message);
}

/** Throw the first problem of an invalid report as an {@link FdtError}; return for a valid one. */
export function assertValidReport(report: FdtCheckReport): void {
  const first = report.problems[0];
  if (first !== undefined) throw problemToError(first);
}
