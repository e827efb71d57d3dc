/** OPAL's REST route for publishing: POST /data/config with a DataUpdate body, unchanged. */
import type { Client } from "@connectrpc/connect";
import type { BroadcasterService } from "../../gen/opal/mesh/v1/broadcaster_pb.js";
import { parseDataUpdate } from "../common/data-entries.js";
import { HttpError, readJson, sendJson } from "../common/http/json-io.js";
import type { RestRoute } from "../common/http/rest-router.js";
import type { Logger } from "../common/logger.js";
import { ValidationError } from "../common/validation-error.js";
import { publishDataUpdate } from "./publish.js";

export interface TriggerRestOptions {
  broadcaster: Client<typeof BroadcasterService>;
  logger: Logger;
  dataConfigRoute: string;
  maxBodyBytes: number;
}

/** FastAPI's 422 shape, which OPAL users' tooling already understands. */
function validationDetail(error: ValidationError): unknown {
  const loc = ["body", ...error.field.split(/[.[\]]+/).filter((part) => part !== "").map((part) => (/^\d+$/.test(part) ? Number(part) : part))];
  return [{ loc, msg: error.reason, type: "value_error" }];
}

export function triggerRestRoutes(options: TriggerRestOptions): RestRoute[] {
  return [
    {
      method: "POST",
      path: options.dataConfigRoute,
      async handle(request, response) {
        const body = await readJson(request, options.maxBodyBytes);
        let update;
        try {
          update = parseDataUpdate(body);
        } catch (error) {
          if (error instanceof ValidationError) throw new HttpError(422, error.message, validationDetail(error));
          throw error;
        }
        const published = await publishDataUpdate(options.broadcaster, update);
        options.logger.info({ updateId: published.id, position: published.position.toString(), entries: update.entries.length }, "data update published");
        sendJson(response, 200, { status: "ok", id: published.id, position: Number(published.position) });
      },
    },
  ];
}
