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
