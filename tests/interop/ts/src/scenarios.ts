/**
 * The TypeScript side of the cross-language tests (tests/interop/test_typescript_interop.py):
 *
 *   node dist/scenarios.js <command> '<spec as JSON>'   (after npm run build)
 *
 * runs one step with the TypeScript Agents SDK (and the Timestep service over gRPC) and prints
 * one JSON object on stdout. The model server is the one in OPENAI_BASE_URL (see model.ts).
 *
 * - pause: run `assistant` on `input` until it pauses (with `earlierDecisions`: decide those,
 *   run on to the next pause); apply `decisions`; print the state.
 * - resume: load `state`, apply `decisions`, run on; print the outcome.
 * - native: pause, then resume the saved state with `resumeDecisions` (a same-language resume).
 * - inspect: load each of `states`; print its pending calls and context.
 * - resume-from-service: GetRunState(TYPESCRIPT) of `runId`, then as resume.
 * - pause-and-import: as pause, then ImportRunState, decide `serviceDecisions` over gRPC and
 *   ResumeRun in the service; print the imported and the resumed run.
 */
import { toJson } from '@bufbuild/protobuf';
import { MemorySession, RunState, run, type RunToolApprovalItem } from '@openai/agents';
import { assistant } from './agents.js';
import { RunSchema, StateFormat, type Run, type TimestepClient } from '@timestep/client';
import { connectNode } from '@timestep/client/node';
import { configureModel } from './model.js';

/** A decision on the pending tool call `callId`. */
interface Decision {
  callId: string;
  approve: boolean;
  always?: boolean;
  message?: string;
}

interface Spec {
  input?: string;
  stream?: boolean;
  context?: Record<string, unknown>;
  sessionId?: string;
  decisions?: Decision[];
  earlierDecisions?: Decision[];
  resumeDecisions?: Decision[];
  state?: string;
  states?: string[];
  address?: string;
  runId?: string;
  serviceDecisions?: Decision[];
}

type AgentState = RunState<unknown, typeof assistant>;

function callIdOf(item: RunToolApprovalItem): string {
  return (item.rawItem as { callId: string }).callId;
}

function decide(state: AgentState, decisions: Decision[] = []): void {
  for (const decision of decisions) {
    const item = state.getInterruptions().find((candidate) => callIdOf(candidate) === decision.callId);
    if (!item) {
      throw new Error(`no pending tool call ${decision.callId}`);
    }
    if (decision.approve) {
      state.approve(item, { alwaysApprove: decision.always });
    } else {
      state.reject(item, { alwaysReject: decision.always, message: decision.message });
    }
  }
}

/** Runs on new input (with the spec's context) or a state, streamed or not. */
async function runAssistant(input: string | AgentState, spec: Spec, session?: MemorySession) {
  const context = typeof input === 'string' ? spec.context : undefined;
  if (!spec.stream) {
    return run(assistant, input, { context, session });
  }
  const streamed = await run(assistant, input, { context, session, stream: true });
  for await (const event of streamed) {
    void event; // every event is consumed so the run proceeds; only the outcome matters here
  }
  await streamed.completed;
  return streamed;
}

/** Runs, then applies `decisionsBeforeSaving` to the state it paused in, and describes the outcome. */
async function outcome(
  input: string | AgentState,
  spec: Spec,
  sessionId: string | undefined,
  decisionsBeforeSaving: Decision[] = [],
) {
  const session = sessionId ? new MemorySession({ sessionId }) : undefined;
  const result = await runAssistant(input, spec, session);
  decide(result.state, decisionsBeforeSaving);
  const usage = result.state.usage;
  return {
    finalOutput: result.finalOutput ?? null,
    lastAgent: result.lastAgent?.name ?? null,
    interruptions: result.interruptions.map(callIdOf),
    state: result.interruptions.length > 0 ? result.state.toString() : null,
    usage: {
      requests: usage.requests,
      inputTokens: usage.inputTokens,
      outputTokens: usage.outputTokens,
      totalTokens: usage.totalTokens,
    },
    sessionId: session ? await session.getSessionId() : null,
    sessionItems: session ? await session.getItems() : null,
  };
}

function savedState(paused: { state: string | null; finalOutput: unknown }): string {
  if (!paused.state) {
    throw new Error(`the run did not pause; it answered ${JSON.stringify(paused.finalOutput)}`);
  }
  return paused.state;
}

/** Runs until it pauses (with `earlierDecisions`: decides those, runs on to the next pause),
 * applies `decisions` and saves the state. */
async function pause(spec: Spec) {
  let paused = await outcome(spec.input ?? '', spec, spec.sessionId, spec.earlierDecisions ?? spec.decisions);
  if (spec.earlierDecisions) {
    const state: AgentState = await RunState.fromString(assistant, savedState(paused));
    paused = await outcome(state, spec, spec.sessionId, spec.decisions);
  }
  return { ...paused, state: savedState(paused) };
}

async function resume(spec: Spec, stateJson: string, sessionId: string | undefined) {
  const state: AgentState = await RunState.fromString(assistant, stateJson);
  decide(state, spec.decisions);
  return outcome(state, spec, sessionId);
}

async function native(spec: Spec) {
  const paused = await pause(spec);
  return resume({ ...spec, decisions: spec.resumeDecisions }, paused.state, spec.sessionId);
}

async function inspect(spec: Spec) {
  const loaded = [];
  for (const stateJson of spec.states ?? []) {
    const state: AgentState = await RunState.fromString(assistant, stateJson);
    loaded.push({ interruptions: state.getInterruptions().map(callIdOf), context: state._context.context });
  }
  return loaded;
}

function serviceClient(spec: Spec): TimestepClient['runs'] {
  if (!spec.address) {
    throw new Error('the spec names no service address');
  }
  return connectNode({ baseUrl: `http://${spec.address}` }).runs;
}

async function resumeFromService(spec: Spec) {
  const exported = await serviceClient(spec).getRunState({ runId: spec.runId, format: StateFormat.TYPESCRIPT });
  return {
    exported: {
      format: StateFormat[exported.format],
      schemaVersion: exported.schemaVersion,
      agent: exported.agent,
      sessionId: exported.sessionId,
    },
    ...(await resume(spec, exported.stateJson, exported.sessionId || undefined)),
  };
}

async function pauseAndImport(spec: Spec) {
  const paused = await pause(spec);
  const runs = serviceClient(spec);
  const imported = await runs.importRunState({ agent: assistant.name, stateJson: paused.state, sessionId: spec.sessionId });
  const run = imported.run as Run;
  for (const decision of spec.serviceDecisions ?? []) {
    const interruption = run.interruptions.find((candidate) => candidate.callId === decision.callId);
    if (!interruption) {
      throw new Error(`the imported run has no interruption for ${decision.callId}`);
    }
    const ids = { runId: run.id, interruptionId: interruption.id, always: decision.always ?? false };
    await (decision.approve
      ? runs.approveInterruption(ids)
      : runs.rejectInterruption({ ...ids, message: decision.message ?? '' }));
  }
  const resumed = await runs.resumeRun({ runId: run.id, wait: true });
  return {
    imported: {
      format: StateFormat[imported.format],
      schemaVersion: imported.schemaVersion,
      run: toJson(RunSchema, run),
    },
    run: toJson(RunSchema, resumed.run as Run),
  };
}

const commands: Record<string, (spec: Spec) => Promise<unknown>> = {
  pause,
  resume: (spec) => resume(spec, spec.state ?? '', spec.sessionId),
  native,
  inspect,
  'resume-from-service': resumeFromService,
  'pause-and-import': pauseAndImport,
};

const [command = '', specJson = '{}'] = process.argv.slice(2);
const handler = commands[command];
if (!handler) {
  throw new Error(`unknown command ${JSON.stringify(command)}; use one of ${Object.keys(commands).join(', ')}`);
}
configureModel();
console.log(JSON.stringify(await handler(JSON.parse(specJson) as Spec)));
