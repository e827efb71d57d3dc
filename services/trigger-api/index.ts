export { createTriggerService, type TriggerServiceOptions } from "./service.js";
export { triggerRestRoutes, type TriggerRestOptions } from "./rest.js";
export { DeliveryStatusReader, mergeStatuses } from "./delivery-status.js";
export { EventBatcher } from "./event-batcher.js";
export { logPublished, SERVER_SPAN, triggerInterceptors } from "./interceptors.js";
