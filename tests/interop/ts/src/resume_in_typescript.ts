// Resume in TypeScript a run the Timestep service paused for approval. In tests/interop/ts:
//   npm ci && npm run generate && npm run build
//   node dist/resume_in_typescript.js localhost:50051 run_…
import { createClient } from '@connectrpc/connect';
import { createGrpcTransport } from '@connectrpc/connect-node';
import { RunState, run } from '@openai/agents';
import { assistant } from './agents.js';
import { RunService, StateFormat } from './gen/timestep/v1/runs_pb.js';
import { configureModel } from './model.js';

const [address, runId] = process.argv.slice(2);
configureModel();
const runs = createClient(RunService, createGrpcTransport({ baseUrl: `http://${address}` }));

const { stateJson } = await runs.getRunState({ runId, format: StateFormat.TYPESCRIPT });
const state = await RunState.fromString(assistant, stateJson);
for (const interruption of state.getInterruptions()) {
  console.log(`approving ${interruption.name}(${interruption.arguments})`);
  state.approve(interruption);
}
const result = await run(assistant, state);
console.log(result.finalOutput);
