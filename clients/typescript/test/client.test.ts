// TimestepClient against a real service (tests/clients/test_typescript_client.py starts it, with a
// fake model that answers each run with a send_email call and, after the decision, a text; in
// the conversation test, a text and then a send_email call, and a webhook receiver at
// TIMESTEP_WEBHOOK_URL that answers 200): over gRPC and, when TIMESTEP_HTTP_URL is set, over
// Connect.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { Agent, tool } from '@openai/agents';
import { ConnectError, Code } from '@connectrpc/connect';
import { loadRunState, importRunState } from '../src/agents.js';
import { connectNode } from '../src/node.js';
import {
  DeliveryStatus,
  fieldViolations,
  InterruptionStatus,
  MultitaskStrategy,
  RunStatus,
  type SessionItem,
  type TimestepClient,
  type WatchRunsResponse,
  type Webhook,
  type WebhookDelivery,
} from '../src/index.js';

const grpcUrl = required('TIMESTEP_GRPC_URL');
const apiKey = required('TIMESTEP_API_KEY');
const webhookUrl = required('TIMESTEP_WEBHOOK_URL');
const transports: Array<['grpc' | 'connect', string]> = [['grpc', grpcUrl]];
if (process.env.TIMESTEP_HTTP_URL) transports.push(['connect', process.env.TIMESTEP_HTTP_URL]);

const sendEmail = tool({
  name: 'send_email',
  description: 'Send an email.',
  parameters: {
    type: 'object',
    properties: { to: { type: 'string' }, subject: { type: 'string' }, body: { type: 'string' } },
    required: ['to', 'subject', 'body'],
    additionalProperties: false,
  },
  strict: true,
  needsApproval: true,
  execute: async () => 'sent',
});
const assistant = new Agent({ name: 'assistant', instructions: 'Help.', tools: [sendEmail] });

function required(name: string): string {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set; run these tests from tests/clients/test_typescript_client.py`);
  return value;
}

/** The call fails with `code`. */
async function rejectsWith(call: Promise<unknown>, code: Code): Promise<void> {
  await assert.rejects(call, (error: unknown) => {
    assert.equal(ConnectError.from(error).code, code);
    return true;
  });
}

/** The first change of `watch` that `matches`, within 10 s. */
async function nextChange(
  watch: AsyncGenerator<WatchRunsResponse>,
  matches: (change: WatchRunsResponse) => boolean,
): Promise<WatchRunsResponse> {
  const deadline = AbortSignal.timeout(10_000);
  for (;;) {
    const next = await Promise.race([
      watch.next(),
      new Promise<never>((_, reject) => deadline.addEventListener('abort', () => reject(new Error('no such change')))),
    ]);
    if (next.done) throw new Error('the watch ended');
    if (matches(next.value)) return next.value;
  }
}

/** The webhook's delivery `id` once the receiver has taken it (2xx), within 10 s. */
async function delivered(client: TimestepClient, webhookId: string, id: string): Promise<WebhookDelivery> {
  const deadline = Date.now() + 10_000;
  for (;;) {
    // Attempts are recorded as they happen and nothing announces them: polled, bounded above.
    const found = (await client.listWebhookDeliveries(webhookId)).deliveries.find((d) => d.id === id);
    if (found?.status === DeliveryStatus.SUCCEEDED) return found;
    if (Date.now() > deadline) throw new Error(`delivery ${id} was not taken within 10 s: ${JSON.stringify(found?.attempts)}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

function given<T>(value: T | undefined): T {
  assert.ok(value !== undefined);
  return value;
}

/** Seconds since the epoch of a Webhook timestamp. */
function seconds(webhook: Webhook, field: 'secretTime' | 'previousSecretExpireTime'): number {
  return Number(given(webhook[field]).seconds);
}

for (const [protocol, baseUrl] of transports) {
  describe(`over ${protocol}`, () => {
    const client: TimestepClient = connectNode({ baseUrl, protocol, apiKey });

    test('a paused run appears in the watch, is approved, resumes and streams to COMPLETED', async () => {
      const stop = new AbortController();
      const watch = client.watchRuns('', { signal: stop.signal });
      const bookmark = await watch.next();
      assert.equal(bookmark.value?.event, undefined, 'a watch without a cursor starts with a bookmark');

      const run = await client.createRun('assistant', 'Email Bob that I am late', { wait: true });
      assert.equal(run.status, RunStatus.INTERRUPTED);
      const paused = await nextChange(watch, (c) => c.runId === run.id && c.event?.kind.case === 'interruption');
      assert.equal(paused.agent, 'assistant');
      const [interruption] = run.interruptions;
      assert.equal(interruption.toolName, 'send_email');

      const approved = await client.approve(run.id, interruption.id);
      assert.equal(approved.status, InterruptionStatus.APPROVED);
      await nextChange(watch, (c) => c.runId === run.id && c.event?.kind.case === 'interruptionDecided');
      stop.abort();

      await client.resume(run.id);
      const events = [];
      for await (const event of client.streamEvents(run.id, run.lastSequence)) events.push(event);
      const last = events.at(-1);
      assert.equal(last?.kind.case, 'statusChanged');
      assert.equal(last?.kind.value.status, RunStatus.COMPLETED);
      assert.ok(events.some((e) => e.kind.case === 'finalOutput'));
      const done = await client.getRun(run.id);
      assert.equal(done.status, RunStatus.COMPLETED);
      assert.match(done.finalOutput, /sent/i);
    });

    test('a rejected run exports its RunState to @openai/agents and imports it back', async () => {
      const run = await client.createRun('assistant', 'Email Bob that I am late', { wait: true });
      const [interruption] = run.interruptions;
      await client.reject(run.id, interruption.id, { message: 'Not now' });
      const state = await loadRunState(client, assistant, run.id);
      const [decided] = state.getInterruptions();
      assert.equal(decided.name, 'send_email');
      const imported = await importRunState(client, state);
      assert.equal(imported.status, RunStatus.INTERRUPTED);
      assert.equal(imported.agent, 'assistant');
      await client.cancel(imported.id, 'done with it');
      const resumed = await client.resume(run.id, { wait: true });
      assert.equal(resumed.status, RunStatus.COMPLETED);
    });

    test('a conversation is listed, read page by page in order, and deleted with its runs', async () => {
      const sessionId = `ts-${protocol}-${Date.now()}`;
      const answered = await client.createRun('assistant', 'My name is Ada.', { sessionId, wait: true });
      assert.equal(answered.status, RunStatus.COMPLETED);
      const paused = await client.createRun('assistant', 'Email Bob that I am late', { sessionId, wait: true });
      assert.equal(paused.status, RunStatus.INTERRUPTED);
      // The paused run holds the session's turn: REJECT refuses a new run instead of queueing it.
      const busy = client.createRun('assistant', 'Hello?', { sessionId, multitaskStrategy: MultitaskStrategy.REJECT });
      await rejectsWith(busy, Code.FailedPrecondition);
      await client.cancel(paused.id, 'done with it');

      const [newest] = (await client.listSessions({ agent: 'assistant', pageSize: 1 })).sessions;
      assert.equal(newest.id, sessionId, 'newest activity first');
      assert.ok(!(await client.listSessions({ agent: 'billing' })).sessions.some((s) => s.id === sessionId));
      const session = await client.getSession(sessionId);
      assert.equal(session.runCount, 2n);
      assert.deepEqual(session.agents, ['assistant']);

      const first = await client.listSessionItems(sessionId, { pageSize: 1 });
      assert.equal(first.items.length, 1);
      assert.notEqual(first.nextPageToken, '');
      const items: SessionItem[] = [];
      for await (const item of client.sessionItems(sessionId, { pageSize: 1 })) items.push(item);
      assert.equal(BigInt(items.length), session.itemCount);
      assert.deepEqual(items[0], first.items[0]);
      assert.deepEqual(
        items.map((item) => item.runId),
        [answered.id, answered.id, ...items.slice(2).map(() => paused.id)],
      );
      assert.match(items[0].itemJson, /My name is Ada/);
      assert.ok(items.some((item) => JSON.parse(item.itemJson).type === 'function_call'));
      assert.ok(items.every((item, i) => i === 0 || item.id > items[i - 1].id), 'oldest first');

      const deleted = await client.deleteSession(sessionId, { deleteRuns: true });
      assert.equal(deleted.deletedRuns, 2n);
      assert.equal(deleted.deletedItems, session.itemCount);
      await rejectsWith(client.getSession(sessionId), Code.NotFound);
      await rejectsWith(client.getRun(answered.id), Code.NotFound);
      await rejectsWith(client.deleteSession(sessionId), Code.NotFound);
      assert.equal((await client.deleteSession(sessionId, { allowMissing: true })).deletedItems, 0n);
    });

    test('an edit that does not fit the tool is refused with field violations; a fitting one runs, resuming at once', async () => {
      const run = await client.createRun('assistant', 'Email Bob that I am late', { wait: true });
      const [interruption] = run.interruptions;
      const misfit = JSON.stringify({ to: 42, subject: 'Late', body: 'Soon' });
      await assert.rejects(client.approve(run.id, interruption.id, { argumentsJson: misfit }), (error: unknown) => {
        assert.equal(ConnectError.from(error).code, Code.InvalidArgument);
        const [violation] = fieldViolations(error);
        assert.equal(violation.field, 'arguments_json.to');
        assert.match(violation.description, /not of type 'string'/);
        return true;
      });
      assert.equal((await client.getRun(run.id)).interruptions[0].status, InterruptionStatus.PENDING);

      const edited = JSON.stringify({ to: 'carol@example.com', subject: 'Late', body: 'See you at 10:30.' });
      const decision = await client.approveAndResume(run.id, interruption.id, {
        argumentsJson: edited,
        decidedBy: 'alice@example.com',
        wait: true,
      });
      assert.equal(decision.interruption.status, InterruptionStatus.APPROVED);
      assert.deepEqual(JSON.parse(decision.interruption.approvedArgumentsJson), JSON.parse(edited));
      assert.equal(decision.interruption.decidedBy, 'alice@example.com');
      assert.equal(decision.run.status, RunStatus.COMPLETED, 'the last decision resumed the run in the same call');
      const outputs = [];
      for await (const event of client.streamEvents(run.id)) if (event.kind.case === 'toolOutput') outputs.push(event.kind.value.output);
      assert.deepEqual(outputs, ["Email to carol@example.com with subject 'Late' sent."]);
    });

    test('a rejection without resume leaves the run paused; one with resume resumes it', async () => {
      const run = await client.createRun('assistant', 'Email Bob that I am late', { wait: true });
      const [interruption] = run.interruptions;
      const decision = await client.rejectAndResume(run.id, interruption.id, { message: 'Not now', resume: false });
      assert.equal(decision.interruption.status, InterruptionStatus.REJECTED);
      assert.equal(decision.run.status, RunStatus.INTERRUPTED);
      const again = await client.rejectAndResume(run.id, interruption.id, { message: 'Not now', wait: true });
      assert.equal(again.run.status, RunStatus.COMPLETED, 'repeating the decision with resume resumes the run');
    });

    test('a webhook gets a test event, lists its delivery, rotates its secret with an overlap and is deleted', async () => {
      const created = await client.createWebhook(webhookUrl, { eventTypes: ['run.failed'], description: `ts ${protocol}` });
      const webhook = given(created.webhook);
      assert.match(created.secret, /^whsec_/);
      assert.deepEqual(webhook.eventTypes, ['run.failed']);
      assert.equal(webhook.previousSecretExpireTime, undefined);
      const listed = await client.listWebhooks({ pageSize: 500 });
      assert.ok(listed.webhooks.some((w) => w.id === webhook.id));
      assert.equal((await client.getWebhook(webhook.id)).description, `ts ${protocol}`);

      const sent = await client.sendTestEvent(webhook.id);
      assert.equal(sent.status, DeliveryStatus.PENDING);
      assert.equal(sent.eventType, 'webhook.test');
      const first = await delivered(client, webhook.id, sent.id);
      assert.deepEqual(first.attempts.map((a) => a.responseCode), [200]);

      const rotated = await client.rotateWebhookSecret(webhook.id, { previousSecretTtlMs: 3_600_000 });
      const overlapping = given(rotated.webhook);
      assert.match(rotated.secret, /^whsec_/);
      assert.notEqual(rotated.secret, created.secret);
      assert.equal(seconds(overlapping, 'previousSecretExpireTime') - seconds(overlapping, 'secretTime'), 3600);
      const again = await client.sendTestEvent(webhook.id);
      await delivered(client, webhook.id, again.id);
      const deliveries = await client.listWebhookDeliveries(webhook.id, { pageSize: 1 });
      assert.deepEqual(deliveries.deliveries.map((d) => d.id), [again.id], 'newest first');
      assert.notEqual(deliveries.nextPageToken, '');

      const revoked = await client.rotateWebhookSecret(webhook.id, { previousSecretTtlMs: 0 });
      assert.equal(given(revoked.webhook).previousSecretExpireTime, undefined);
      await assert.rejects(client.rotateWebhookSecret(webhook.id, { previousSecretTtlMs: -1000 }), (error: unknown) => {
        assert.equal(ConnectError.from(error).code, Code.InvalidArgument);
        assert.deepEqual(fieldViolations(error).map((v) => v.field), ['previous_secret_ttl']);
        return true;
      });

      await client.deleteWebhook(webhook.id);
      await rejectsWith(client.getWebhook(webhook.id), Code.NotFound);
      await rejectsWith(client.deleteWebhook(webhook.id), Code.NotFound);
    });

    test('errors carry their code: an unknown run is NOT_FOUND', async () => {
      await rejectsWith(client.getRun('run_doesnotexist'), Code.NotFound);
    });

    test('a wrong key is UNAUTHENTICATED', async () => {
      const stranger = connectNode({ baseUrl, protocol, apiKey: 'ts_wrong' });
      await rejectsWith(stranger.listRuns(), Code.Unauthenticated);
    });
  });
}
