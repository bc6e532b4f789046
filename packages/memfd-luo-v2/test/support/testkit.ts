/**
 * `@liveupdate/handler-testkit`, imported from its source rather than as a devDependency.
 *
 * Why: the kit's own tests run on memfd-v2, so the kit devDepends on this package; a
 * devDependency back would make a cycle that turbo refuses for the whole workspace
 * ("Cyclic dependency detected: @liveupdate/handler-testkit#build, @liveupdate/memfd-luo-v2#build").
 * Every other handler package depends on the kit normally. Its `src/**` are listed in this
 * package's turbo.json test inputs so that a change to the kit reruns these fixtures.
 */
export * from "../../../handler-testkit/src/index.js";
