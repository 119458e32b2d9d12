// @openai/agents helpers: continue a paused Timestep run in TypeScript, or hand a paused
// TypeScript run to the service. Needs the peer dependency @openai/agents.
import { type Agent, RunState } from '@openai/agents';
import type { ImportRunStateOptions, TimestepClient } from './client.js';
import { type Run, StateFormat } from './gen/timestep/v1/runs_pb.js';

/** The paused run's state, with the decisions made so far, ready for `run(agent, state)`. */
export async function loadRunState(client: TimestepClient, agent: Agent<any, any>, runId: string) {
  const { stateJson } = await client.getRunState(runId, StateFormat.TYPESCRIPT);
  return RunState.fromString(agent, stateJson);
}

/** A new INTERRUPTED run on the service from a paused TypeScript run's state. */
export async function importRunState(
  client: TimestepClient,
  state: RunState<any, Agent<any, any>>,
  options: ImportRunStateOptions = {},
): Promise<Run> {
  const agent = state._currentAgent.name;
  const response = await client.importRunState(agent, state.toString(), options);
  if (!response.run) throw new Error('the service sent no run');
  return response.run;
}
