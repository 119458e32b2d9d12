// The Timestep client: TimestepClient over a transport of your choice, and the generated
// messages, enums and service descriptors of timestep.v1.
export { Code, ConnectError } from '@connectrpc/connect';
export {
  bearer,
  TimestepClient,
  type ApproveOptions,
  type CreateRunOptions,
  type CreateWebhookOptions,
  type Decision,
  type DeleteSessionOptions,
  type ImportRunStateOptions,
  type PageOptions,
  type ReconnectOptions,
  type RejectOptions,
  type ResumeOptions,
  type RotateWebhookSecretOptions,
} from './client.js';
export { fieldViolations, type FieldViolation } from './errors.js';
export * from './gen/timestep/v1/agents_pb.js';
export * from './gen/timestep/v1/runs_pb.js';
export * from './gen/timestep/v1/schedules_pb.js';
export * from './gen/timestep/v1/sessions_pb.js';
export * from './gen/timestep/v1/usage_pb.js';
export * from './gen/timestep/v1/webhooks_pb.js';
