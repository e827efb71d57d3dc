export { createBroadcasterService } from "./service.js";
export { MemoryLog, LogTruncatedError, type MemoryLogOptions } from "./memory-log.js";
