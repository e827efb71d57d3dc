// Lint runs in `npm test` with warnings as errors.
import js from "@eslint/js";
import tseslint from "typescript-eslint";

export default tseslint.config(
  { ignores: ["gen/**", "node_modules/**", "bench/out/**"] },
  js.configs.recommended,
  ...tseslint.configs.recommendedTypeChecked,
  {
    languageOptions: {
      parserOptions: { projectService: { allowDefaultProject: ["*.js", "bin/*.js", "scripts/*.js"] }, tsconfigRootDir: import.meta.dirname },
      globals: { process: "readonly", console: "readonly", Buffer: "readonly", URL: "readonly", setTimeout: "readonly", clearTimeout: "readonly", performance: "readonly" },
    },
    rules: {
      "@typescript-eslint/no-floating-promises": ["error", { allowForKnownSafeCalls: [{ from: "package", name: ["test", "it", "describe", "suite", "before", "after"], package: "node:test" }] }],
      "@typescript-eslint/no-unused-vars": ["error", { argsIgnorePattern: "^_", varsIgnorePattern: "^_" }],
      "@typescript-eslint/consistent-type-imports": ["error", { fixStyle: "inline-type-imports" }],
      "@typescript-eslint/require-await": "off",
      "no-restricted-properties": ["error", { object: "process", property: "env", message: "read configuration in services/common/config (or pass the environment down)" }],
    },
  },
  {
    files: ["services/common/config/**", "services/mesh/cli.ts", "scripts/**", "test/**", "bench/**", "bin/**", "deploy/**"],
    rules: { "no-restricted-properties": "off" },
  },
  {
    files: ["**/*.js"],
    ...tseslint.configs.disableTypeChecked,
  },
  {
    // The dashboard's page script runs in the browser (tsc checks its types separately).
    files: ["services/distributor/dashboard/page-script.js"],
    languageOptions: {
      sourceType: "script",
      globals: Object.fromEntries(
        ["window", "document", "location", "history", "sessionStorage", "fetch", "setInterval", "clearInterval", "AbortController", "TextDecoderStream", "URLSearchParams", "Element", "HTMLElement"].map((name) => [name, "readonly"]),
      ),
    },
  },
);
