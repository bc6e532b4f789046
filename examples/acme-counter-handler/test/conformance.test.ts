/**
 * Both formats through the handler-testkit suite: round trip, unpreserve, forgotten pages,
 * hostile records, compatible rules.
 */
import { describeHandlerConformance } from "@liveupdate/handler-testkit";
import { v1Subject, v2Subject } from "./subjects.js";

describeHandlerConformance(v1Subject, { seeds: [1, 2, 3] });
describeHandlerConformance(v2Subject, { seeds: [1, 2, 3] });
