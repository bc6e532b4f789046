/**
 * The kit run on the repo's own memfd-v2 handler: a real handler that conforms.
 */
import { describeHandlerConformance } from "../src/index.js";
import { memfdV2Subject } from "./support/memfd-v2-subject.js";

describeHandlerConformance(memfdV2Subject, { seeds: [1, 2], hostileCases: 32 });
