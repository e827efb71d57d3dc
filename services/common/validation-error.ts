/** Bad input, naming the field at fault (e.g. `entries[0].save_method`). */
export class ValidationError extends Error {
  override readonly name = "ValidationError";
  constructor(
    readonly field: string,
    readonly reason: string,
  ) {
    super(field === "" ? reason : `${field}: ${reason}`);
  }
}

/** FastAPI's 422 detail, which OPAL users' tooling already understands: [{loc, msg, type}]. */
export function validationDetail(error: ValidationError): unknown {
  const loc = ["body", ...error.field.split(/[.[\]]+/).filter((part) => part !== "").map((part) => (/^\d+$/.test(part) ? Number(part) : part))];
  return [{ loc, msg: error.reason, type: "value_error" }];
}
