// TimestepClient in a browser: Connect (JSON by default) over fetch, to the service's HTTP port.
import { createConnectTransport } from '@connectrpc/connect-web';
import { bearer, TimestepClient } from './client.js';

export interface WebClientOptions {
  /** The service's HTTP origin, e.g. "http://localhost:8080"; "" for the page's own origin. */
  baseUrl: string;
  apiKey?: string;
  /** Send binary protobuf instead of JSON. */
  binary?: boolean;
}

export function connectWeb(options: WebClientOptions): TimestepClient {
  const interceptors = options.apiKey ? [bearer(options.apiKey)] : [];
  return new TimestepClient(
    createConnectTransport({ baseUrl: options.baseUrl, useBinaryFormat: options.binary ?? false, interceptors }),
  );
}
