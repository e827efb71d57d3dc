/** OPAL's command-line verbs, each a commander command built with the environment it reads. */
export { generateSecretCommand } from "./generate-secret.js";
export { obtainTokenCommand } from "./obtain-token.js";
export { printConfigCommand } from "./print-config.js";
export { publishDataUpdateCommand } from "./publish-data-update.js";
export { statusCommand } from "./status.js";
export { rolloutCommand } from "./rollout.js";
