export { createBroadcasterService } from "./service.js";
export { MemoryLog, type MemoryLogOptions } from "./memory-log.js";
export { LogTruncatedError, type EventLog, type LogHead } from "./event-log.js";
