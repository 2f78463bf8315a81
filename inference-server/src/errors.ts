/**
 * What can go wrong with a request, in the data plane's own terms. Modules
 * below the HTTP layer throw these; the HTTP layer alone chooses a status
 * for each (http/errors.ts), so the same failure can become a gRPC code or a
 * log line elsewhere without the decoder or the scheduler knowing about HTTP.
 * Every message says what went wrong and what the client can do.
 */
export abstract class ServingError extends Error {
  constructor(message: string) {
    super(message);
    this.name = new.target.name;
  }
}

/** The request is malformed: a missing field, a bad flag, a wrong tensor shape. */
export class InvalidRequest extends ServingError {}

/** The image's bytes are not a decodable image, or not the size the request demands. */
export class InvalidImage extends InvalidRequest {}

/** A body, an image's pixel count or a tensor is over its limit. */
export class TooLarge extends ServingError {}

/** A content type or an image format that is not served. */
export class UnsupportedMedia extends ServingError {}

/** A model or route that does not exist here. */
export class NotFound extends ServingError {}

/** The model is not loaded yet (or no longer): retry later, or elsewhere. */
export class NotReady extends ServingError {
  constructor(
    message: string,
    readonly retryAfterSeconds = 5,
  ) {
    super(message);
  }
}

/**
 * Refused for load: the memory bound, or the opt-in latency budget. Counted
 * and summed up in one log line, never logged one by one (overload can mean
 * hundreds a second).
 */
export class Overloaded extends ServingError {
  constructor(
    message: string,
    /** Which bound refused it, for the rejected-requests metric. */
    readonly bound: 'memory' | 'queue_budget' | 'max_in_flight',
    readonly retryAfterSeconds = 1,
  ) {
    super(message);
  }
}

/** The request could not start its inference before its deadline. */
export class DeadlineExceeded extends ServingError {}

/** The client sent its body too slowly (idle, or below the minimum rate). */
export class UploadTimeout extends ServingError {}

/** The client went away; nobody is left to answer. */
export class ClientGone extends ServingError {}

export const badRequest = (message: string) => new InvalidRequest(message);

/** What a catch clause caught, as an Error (a rejection must carry one). */
export const asError = (err: unknown): Error => (err instanceof Error ? err : new Error(String(err)));
export const invalidImage = (message: string) => new InvalidImage(message);
export const tooLarge = (message: string) => new TooLarge(message);
export const unsupportedMedia = (message: string) => new UnsupportedMedia(message);
export const notFound = (message: string) => new NotFound(message);
