// Errors that carry an HTTP status and a message a person can read. Routes throw
// them; the one error handler (error-handler.ts) renders them as a page or JSON.

export class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly code = `http:${status}`,
  ) {
    super(message);
    this.name = 'HttpError';
  }
}

export const notFound = (what = 'This page does not exist.') => new HttpError(404, what, 'http:not-found');
