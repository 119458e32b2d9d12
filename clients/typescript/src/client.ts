// TimestepClient: the Timestep service's RunService, SessionService and WebhookService (and the
// other services' raw clients) over
// any Connect-ES transport: Connect or gRPC-Web in browsers, Connect or gRPC in Node
// (see ./node.ts and ./web.ts for ready-made transports).
import { durationFromMs } from '@bufbuild/protobuf/wkt';
import { Code, ConnectError, createClient, type Client, type Interceptor, type Transport } from '@connectrpc/connect';
import { AgentService } from './gen/timestep/v1/agents_pb.js';
import {
  type CreateRunRequest,
  type GetRunStateResponse,
  type ImportRunStateRequest,
  type ImportRunStateResponse,
  type Interruption,
  type ListInterruptionsResponse,
  type ListRunsRequest,
  type ListRunsResponse,
  type Run,
  type RunEvent,
  RunService,
  StateFormat,
  type WatchRunsResponse,
} from './gen/timestep/v1/runs_pb.js';
import { ScheduleService } from './gen/timestep/v1/schedules_pb.js';
import {
  type DeleteSessionResponse,
  type ListSessionItemsResponse,
  type ListSessionsResponse,
  type Session,
  type SessionItem,
  SessionService,
} from './gen/timestep/v1/sessions_pb.js';
import { UsageService } from './gen/timestep/v1/usage_pb.js';
import {
  type CreateWebhookResponse,
  type ListWebhookDeliveriesResponse,
  type ListWebhooksResponse,
  type RotateWebhookSecretResponse,
  type Webhook,
  type WebhookDelivery,
  WebhookService,
} from './gen/timestep/v1/webhooks_pb.js';

/** Codes after which re-subscribing to a stream is worth trying. */
const RECONNECTABLE = new Set([Code.Unavailable, Code.Internal, Code.Unknown]);

export interface ReconnectOptions {
  /** How many failed attempts in a row are retried (default 5). */
  maxReconnects?: number;
  /** The first wait before a reconnect, in ms, doubling up to `maxBackoffMs` (default 200). */
  backoffMs?: number;
  maxBackoffMs?: number;
  /** Ends the stream (and any wait between attempts). */
  signal?: AbortSignal;
}

export type CreateRunOptions = Omit<Partial<CreateRunRequest>, '$typeName' | 'agent' | 'input'>;

/** ImportRunState's options: session, metadata and the approval timeout of the imported run. */
export type ImportRunStateOptions = Omit<Partial<ImportRunStateRequest>, '$typeName' | 'agent' | 'stateJson'>;

/** Which page of a listing: `pageSize` 0 means the service's default (50). */
export interface PageOptions {
  pageSize?: number;
  pageToken?: string;
}

export interface DeleteSessionOptions {
  /** Also delete every run that named the session (default: only its history goes). */
  deleteRuns?: boolean;
  /** Cancel the session's QUEUED and RUNNING runs first instead of refusing. */
  force?: boolean;
  /** A session that does not exist is not an error (nothing is deleted). */
  allowMissing?: boolean;
}

export interface RejectOptions {
  /** What the model is told instead of the tool's output; empty: the SDK's default. */
  message?: string;
  /** Also decide later calls of this tool by this agent in this run. */
  always?: boolean;
  /** Who decides (e.g. a user id), recorded with the decision. */
  decidedBy?: string;
}

export interface ApproveOptions {
  /** Also approve later calls of this tool by this agent in this run (not with `argumentsJson`). */
  always?: boolean;
  /** Run the tool with these arguments (a JSON object matching its parameters) instead. */
  argumentsJson?: string;
  /** Who decides (e.g. a user id), recorded with the decision. */
  decidedBy?: string;
}

export interface ResumeOptions {
  /** Resume the run in the same call when this was its last undecided interruption (default true). */
  resume?: boolean;
  /** With `resume`: return only once the run is COMPLETED, INTERRUPTED, FAILED or CANCELLED. */
  wait?: boolean;
}

export interface CreateWebhookOptions {
  /** Event types to deliver, e.g. ['run.interrupted']; empty or unset: all of them. */
  eventTypes?: string[];
  /** Free text for people. */
  description?: string;
}

export interface RotateWebhookSecretOptions {
  /**
   * How long deliveries stay signed with the replaced secret too (besides the new one), in ms:
   * 0 revokes it at once; unset: the service's default, 24 h.
   */
  previousSecretTtlMs?: number;
}

/** The interruption after a decision, and the run after it (and after the resume, if any). */
export interface Decision {
  interruption: Interruption;
  run: Run;
}

/** An interceptor that sends `authorization: Bearer <key>` with every call. */
export function bearer(apiKey: string): Interceptor {
  return (next) => async (request) => {
    request.header.set('authorization', `Bearer ${apiKey}`);
    return next(request);
  };
}

export class TimestepClient {
  readonly runs: Client<typeof RunService>;
  readonly agents: Client<typeof AgentService>;
  readonly usage: Client<typeof UsageService>;
  readonly schedules: Client<typeof ScheduleService>;
  readonly sessions: Client<typeof SessionService>;
  readonly webhooks: Client<typeof WebhookService>;

  constructor(transport: Transport) {
    this.runs = createClient(RunService, transport);
    this.agents = createClient(AgentService, transport);
    this.usage = createClient(UsageService, transport);
    this.schedules = createClient(ScheduleService, transport);
    this.sessions = createClient(SessionService, transport);
    this.webhooks = createClient(WebhookService, transport);
  }

  async createRun(agent: string, input: string, options: CreateRunOptions = {}): Promise<Run> {
    return required((await this.runs.createRun({ ...options, agent, input })).run);
  }

  async getRun(runId: string): Promise<Run> {
    return required((await this.runs.getRun({ runId })).run);
  }

  async listRuns(filter: Omit<Partial<ListRunsRequest>, '$typeName'> = {}): Promise<ListRunsResponse> {
    return this.runs.listRuns(filter);
  }

  /** One run's interruptions, or (without `runId`) every pending one across the tenant's runs. */
  async listInterruptions(runId = '', pageToken = ''): Promise<ListInterruptionsResponse> {
    return this.runs.listInterruptions({ runId, pageToken });
  }

  /**
   * Approve a pending tool call; with `argumentsJson` (a JSON object matching the tool's
   * parameters) the tool runs with those arguments instead of the model's.
   */
  async approve(runId: string, interruptionId: string, options: ApproveOptions = {}): Promise<Interruption> {
    return (await this.approveAndResume(runId, interruptionId, { ...options, resume: false })).interruption;
  }

  /**
   * Approve, and resume the run in the same call if that was its last undecided interruption
   * (`resume`, the default; with `wait`, return once it stops again).
   */
  async approveAndResume(
    runId: string,
    interruptionId: string,
    options: ApproveOptions & ResumeOptions = {},
  ): Promise<Decision> {
    const response = await this.runs.approveInterruption({
      runId,
      interruptionId,
      always: options.always ?? false,
      argumentsJson: options.argumentsJson ?? '',
      decidedBy: options.decidedBy ?? '',
      resume: options.resume ?? true,
      wait: options.wait ?? false,
    });
    return { interruption: required(response.interruption), run: required(response.run) };
  }

  /** Reject a pending tool call; the model is told `message` instead of the tool's output. */
  async reject(runId: string, interruptionId: string, options: RejectOptions = {}): Promise<Interruption> {
    return (await this.rejectAndResume(runId, interruptionId, { ...options, resume: false })).interruption;
  }

  /** Reject, and resume the run in the same call if that was its last undecided interruption. */
  async rejectAndResume(
    runId: string,
    interruptionId: string,
    options: RejectOptions & ResumeOptions = {},
  ): Promise<Decision> {
    const response = await this.runs.rejectInterruption({
      runId,
      interruptionId,
      message: options.message ?? '',
      always: options.always ?? false,
      decidedBy: options.decidedBy ?? '',
      resume: options.resume ?? true,
      wait: options.wait ?? false,
    });
    return { interruption: required(response.interruption), run: required(response.run) };
  }

  async resume(runId: string, options: { wait?: boolean } = {}): Promise<Run> {
    return required((await this.runs.resumeRun({ runId, wait: options.wait ?? false })).run);
  }

  async cancel(runId: string, reason = ''): Promise<Run> {
    return required((await this.runs.cancelRun({ runId, reason })).run);
  }

  /** The run's RunState JSON (TypeScript format by default: what `RunState.fromString` loads). */
  async getRunState(runId: string, format: StateFormat = StateFormat.TYPESCRIPT): Promise<GetRunStateResponse> {
    return this.runs.getRunState({ runId, format });
  }

  /** A new INTERRUPTED run from RunState JSON written by either Agents SDK. */
  async importRunState(
    agent: string,
    stateJson: string,
    options: ImportRunStateOptions = {},
  ): Promise<ImportRunStateResponse> {
    return this.runs.importRunState({ ...options, agent, stateJson });
  }

  /**
   * The run's events until it stops, re-subscribing after a dropped connection from the last
   * stored event received, so none is missed or repeated (live text deltas sent while
   * disconnected are not replayed).
   */
  async *streamEvents(runId: string, afterSequence = 0n, options: ReconnectOptions = {}): AsyncGenerator<RunEvent> {
    let last = afterSequence;
    const subscribe = (signal: AbortSignal) => this.runs.streamRunEvents({ runId, afterSequence: last }, { signal });
    for await (const response of reconnecting(subscribe, options)) {
      const event = required(response.event);
      if (event.sequence > 0n) last = event.sequence;
      yield event;
    }
  }

  /**
   * The tenant's run changes (status changes, new and decided interruptions) as they are
   * committed, re-subscribing from the last cursor after a dropped connection. Without `cursor`
   * the first message is a bookmark (only `cursor` set). Ends only through `options.signal`.
   */
  async *watchRuns(cursor = '', options: ReconnectOptions = {}): AsyncGenerator<WatchRunsResponse> {
    let last = cursor;
    const subscribe = (signal: AbortSignal) => this.runs.watchRuns({ cursor: last }, { signal });
    for await (const change of reconnecting(subscribe, options)) {
      last = change.cursor;
      yield change;
    }
  }

  /** The tenant's sessions, newest activity first (only those with a run of `agent`, if given). */
  async listSessions(options: PageOptions & { agent?: string } = {}): Promise<ListSessionsResponse> {
    return this.sessions.listSessions({ agent: options.agent ?? '', ...pageOf(options) });
  }

  async getSession(sessionId: string): Promise<Session> {
    return required((await this.sessions.getSession({ sessionId })).session);
  }

  /** A page of the session's history, oldest first (`itemJson`, the `runId` that added each item). */
  async listSessionItems(sessionId: string, options: PageOptions = {}): Promise<ListSessionItemsResponse> {
    return this.sessions.listSessionItems({ sessionId, ...pageOf(options) });
  }

  /** Every item of the session's history, oldest first, a page at a time. */
  async *sessionItems(sessionId: string, options: { pageSize?: number } = {}): AsyncGenerator<SessionItem> {
    let pageToken = '';
    do {
      const page = await this.listSessionItems(sessionId, { ...options, pageToken });
      yield* page.items;
      pageToken = page.nextPageToken;
    } while (pageToken);
  }

  /** Delete the session's history, and with `deleteRuns` its runs (as DeleteRun deletes them). */
  async deleteSession(sessionId: string, options: DeleteSessionOptions = {}): Promise<DeleteSessionResponse> {
    return this.sessions.deleteSession({
      sessionId,
      deleteRuns: options.deleteRuns ?? false,
      force: options.force ?? false,
      allowMissing: options.allowMissing ?? false,
    });
  }

  /** Subscribe `url` to run events; the response carries the signing secret, shown only now. */
  async createWebhook(url: string, options: CreateWebhookOptions = {}): Promise<CreateWebhookResponse> {
    return this.webhooks.createWebhook({ url, eventTypes: options.eventTypes ?? [], description: options.description ?? '' });
  }

  async getWebhook(webhookId: string): Promise<Webhook> {
    return required((await this.webhooks.getWebhook({ webhookId })).webhook);
  }

  /** The tenant's webhooks, oldest first (runs' own webhooks are not listed). */
  async listWebhooks(options: PageOptions = {}): Promise<ListWebhooksResponse> {
    return this.webhooks.listWebhooks(pageOf(options));
  }

  async deleteWebhook(webhookId: string): Promise<void> {
    await this.webhooks.deleteWebhook({ webhookId });
  }

  /**
   * A new signing secret for the webhook (in the response, shown only now). Until
   * `webhook.previousSecretExpireTime` deliveries are signed with the replaced secret too.
   */
  async rotateWebhookSecret(
    webhookId: string,
    options: RotateWebhookSecretOptions = {},
  ): Promise<RotateWebhookSecretResponse> {
    const ttl = options.previousSecretTtlMs;
    return this.webhooks.rotateWebhookSecret({
      webhookId,
      previousSecretTtl: ttl === undefined ? undefined : durationFromMs(ttl),
    });
  }

  /** Send a "webhook.test" event; the delivery as created (PENDING). */
  async sendTestEvent(webhookId: string): Promise<WebhookDelivery> {
    return required((await this.webhooks.sendTestEvent({ webhookId })).delivery);
  }

  /** A page of the webhook's deliveries, newest first, each with its attempts. */
  async listWebhookDeliveries(webhookId: string, options: PageOptions = {}): Promise<ListWebhookDeliveriesResponse> {
    return this.webhooks.listWebhookDeliveries({ webhookId, ...pageOf(options) });
  }
}

async function* reconnecting<T>(
  subscribe: (signal: AbortSignal) => AsyncIterable<T>,
  options: ReconnectOptions,
): AsyncGenerator<T> {
  const { maxReconnects = 5, backoffMs = 200, maxBackoffMs = 5000, signal } = options;
  let failures = 0;
  for (;;) {
    const call = new AbortController();
    const abort = () => call.abort();
    signal?.addEventListener('abort', abort);
    try {
      for await (const message of subscribe(call.signal)) {
        failures = 0;
        yield message;
      }
      return;
    } catch (error) {
      if (signal?.aborted) return;
      const code = ConnectError.from(error).code;
      failures += 1;
      if (!RECONNECTABLE.has(code) || failures > maxReconnects) throw error;
      await delay(Math.min(backoffMs * 2 ** (failures - 1), maxBackoffMs), signal);
    } finally {
      signal?.removeEventListener('abort', abort);
      call.abort();
    }
  }
}

function delay(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, ms);
    signal?.addEventListener('abort', () => {
      clearTimeout(timer);
      resolve();
    });
  });
}

function pageOf(options: PageOptions): { pageSize: number; pageToken: string } {
  return { pageSize: options.pageSize ?? 0, pageToken: options.pageToken ?? '' };
}

function required<T>(value: T | undefined): T {
  if (value === undefined) throw new ConnectError('the service sent an empty response', Code.Internal);
  return value;
}
