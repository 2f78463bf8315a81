/**
 * An error a client caused or must react to, carrying the HTTP status it maps to.
 * Modules below the HTTP layer throw these so the mapping lives in one place
 * and every error reaches the client as JSON with a message a person can act on.
 */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
    /** Extra response headers, e.g. Retry-After on 503. */
    readonly headers: Record<string, string> = {},
    /** Load shedding: logged in a periodic summary, not one line each, so overload does not also flood the log. */
    readonly shed = false,
  ) {
    super(message);
    this.name = 'ApiError';
  }
}

export const badRequest = (message: string) => new ApiError(400, message);
export const payloadTooLarge = (message: string) => new ApiError(413, message);
export const unsupportedMedia = (message: string) => new ApiError(415, message);
export const notFound = (message: string) => new ApiError(404, message);
export const unavailable = (message: string, retryAfterSeconds = 1) =>
  new ApiError(503, message, { 'Retry-After': String(retryAfterSeconds) });
/** 503 for a request refused because the server is at capacity (see ApiError.shed). */
export const overloaded = (message: string, retryAfterSeconds = 1) =>
  new ApiError(503, message, { 'Retry-After': String(retryAfterSeconds) }, true);
