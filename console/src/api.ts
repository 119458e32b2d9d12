// The console's client: the service that served the page, with the tab's API key.
import { Code, ConnectError, type TimestepClient } from '../../clients/typescript/src/index.js';
import { connectWeb } from '../../clients/typescript/src/web.js';
import { notice } from './ui.js';

const KEY = 'timestep-api-key';

export function apiKey(): string {
  return sessionStorage.getItem(KEY) ?? '';
}

export function setApiKey(key: string): void {
  if (key) sessionStorage.setItem(KEY, key);
  else sessionStorage.removeItem(KEY);
}

export function client(): TimestepClient {
  return connectWeb({ baseUrl: location.origin, apiKey: apiKey() || undefined });
}

/** Say what went wrong; a missing or refused key sends the person to the key form. */
export function report(error: unknown): void {
  const failure = ConnectError.from(error);
  if (failure.code === Code.Canceled) return;
  if (failure.code === Code.Unauthenticated) {
    location.hash = apiKey() ? '#/key?refused' : '#/key?needed';
    return;
  }
  notice(`${Code[failure.code]}: ${failure.rawMessage}`);
}
