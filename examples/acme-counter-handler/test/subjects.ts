/**
 * The example's handlers as handler-testkit subjects: the package's own public export (also
 * what `luo matrix --handler` uses), re-exported for the tests.
 */
export { counterSnapshot, matrixSubjects, v1Subject, v2Subject } from "../src/index.js";
