// TimestepClient in Node: over gRPC (HTTP/2, e.g. localhost:50051) or Connect (HTTP/1.1 JSON or
// binary, e.g. the service's HTTP port, localhost:8080).
import { createConnectTransport, createGrpcTransport } from '@connectrpc/connect-node';
import { bearer, TimestepClient } from './client.js';

export interface NodeClientOptions {
  /** e.g. "http://localhost:50051" (gRPC) or "http://localhost:8080" (Connect). */
  baseUrl: string;
  protocol?: 'grpc' | 'connect';
  apiKey?: string;
}

export function connectNode(options: NodeClientOptions): TimestepClient {
  const interceptors = options.apiKey ? [bearer(options.apiKey)] : [];
  const transport =
    options.protocol === 'connect'
      ? createConnectTransport({ baseUrl: options.baseUrl, httpVersion: '1.1', interceptors })
      : createGrpcTransport({ baseUrl: options.baseUrl, interceptors });
  return new TimestepClient(transport);
}
